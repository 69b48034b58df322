// The idle warning: the session ends data-session-seconds after the last request (any tab
// of this browser); data-session-warning seconds before, the page offers to stay signed in
// (a POST to the keep-alive address); once it has ended, it says so and links to sign in,
// coming back to this page, where drafts.js offers back what was typed.
(function () {
  "use strict";

  const LAST_REQUEST = "registry-last-request";

  function lastRequest(loadedAt) {
    const shared = Number(window.localStorage.getItem(LAST_REQUEST) || 0);
    return Math.max(shared, loadedAt);
  }

  function csrfToken() {
    const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function start(body) {
    const seconds = Number(body.sessionSeconds);
    const warnAt = seconds - Number(body.sessionWarning || 0);
    const warning = document.getElementById("session-warning");
    const ended = document.getElementById("session-ended");
    if (!seconds || !warning || !ended) {
      return;
    }
    let loadedAt = Date.now();
    window.localStorage.setItem(LAST_REQUEST, String(loadedAt));
    const signIn = ended.querySelector("[data-sign-in]");
    signIn.href += "?next=" + encodeURIComponent(window.location.pathname + window.location.search);

    function tick() {
      const idle = (Date.now() - lastRequest(loadedAt)) / 1000;
      ended.hidden = idle < seconds;
      warning.hidden = idle < warnAt || idle >= seconds;
    }

    warning.querySelector("[data-keep-alive]").addEventListener("click", function (event) {
      fetch(event.currentTarget.dataset.keepAlive, {
        method: "POST",
        credentials: "same-origin",
        redirect: "manual",
        headers: { "X-CSRFToken": csrfToken() },
      })
        .then(function (response) {
          if (response.ok) {
            loadedAt = Date.now();
            window.localStorage.setItem(LAST_REQUEST, String(loadedAt));
          } else {
            loadedAt = 0; // the server no longer knows the session
            window.localStorage.removeItem(LAST_REQUEST);
          }
          tick();
        })
        .catch(tick);
    });
    tick();
    window.setInterval(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    start(document.body.dataset);
  });
})();
