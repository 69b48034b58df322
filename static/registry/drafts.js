// What a nurse types in a <form data-keep-draft> is kept in this browser's local storage
// (never sent anywhere) under her account and the form's address, as she types. When she
// comes back to the same form with values that differ (her session ended, the page was
// closed), the form offers them back. A draft goes once the form was saved (the next page
// is another one), when she discards it or signs out, and after MAX_AGE_HOURS.
(function () {
  "use strict";

  const PREFIX = "registry-draft:";
  const MAX_AGE_HOURS = 24;
  const NOT_KEPT = ["csrfmiddlewaretoken", "action"];

  function keyFor(user, path) {
    return PREFIX + user + ":" + path;
  }

  function read(key) {
    try {
      return JSON.parse(window.localStorage.getItem(key));
    } catch (error) {
      return null;
    }
  }

  function draftKeys() {
    const keys = [];
    for (let i = 0; i < window.localStorage.length; i += 1) {
      const key = window.localStorage.key(i);
      if (key && key.indexOf(PREFIX) === 0) {
        keys.push(key);
      }
    }
    return keys;
  }

  // Drafts too old, and those sent from a form that then led elsewhere (it was saved).
  function tidy(user) {
    const oldest = Date.now() - MAX_AGE_HOURS * 3600 * 1000;
    draftKeys().forEach(function (key) {
      const draft = read(key);
      const mine = key.indexOf(PREFIX + user + ":") === 0;
      const saved = mine && draft && draft.submitted && draft.path !== window.location.pathname;
      if (!draft || draft.saved < oldest || saved) {
        window.localStorage.removeItem(key);
      }
    });
  }

  function valuesOf(form) {
    const values = [];
    new FormData(form).forEach(function (value, name) {
      if (NOT_KEPT.indexOf(name) < 0 && typeof value === "string") {
        values.push([name, value]);
      }
    });
    return values;
  }

  function restore(form, values) {
    const byName = {};
    values.forEach(function (pair) {
      (byName[pair[0]] = byName[pair[0]] || []).push(pair[1]);
    });
    Array.from(form.elements).forEach(function (control) {
      if (!control.name || NOT_KEPT.indexOf(control.name) >= 0 || control.type === "file") {
        return;
      }
      const kept = byName[control.name] || [];
      if (control.type === "radio" || control.type === "checkbox") {
        control.checked = kept.indexOf(control.value) >= 0;
      } else if (control.name in byName) {
        control.value = kept[0];
      }
    });
    form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function offer(form, key, draft) {
    const template = document.getElementById("draft-offer");
    if (!template) {
      return;
    }
    const notice = template.content.firstElementChild.cloneNode(true);
    notice.querySelector(".registry-draft-when").textContent = new Date(
      draft.saved
    ).toLocaleString(document.documentElement.lang || undefined);
    notice.querySelector("[data-draft-restore]").addEventListener("click", function () {
      restore(form, draft.values);
      notice.remove();
    });
    notice.querySelector("[data-draft-discard]").addEventListener("click", function () {
      window.localStorage.removeItem(key);
      notice.remove();
    });
    form.parentNode.insertBefore(notice, form);
  }

  function keep(form, user) {
    const key = keyFor(user, window.location.pathname);
    const draft = read(key);
    if (draft && JSON.stringify(draft.values) !== JSON.stringify(valuesOf(form))) {
      offer(form, key, draft);
    }
    function save(submitted) {
      const entry = {
        path: window.location.pathname,
        saved: Date.now(),
        submitted: submitted,
        values: valuesOf(form),
      };
      window.localStorage.setItem(key, JSON.stringify(entry));
    }
    form.addEventListener("input", function () {
      save(false);
    });
    form.addEventListener("change", function (event) {
      if (event.isTrusted) {
        save(false);
      }
    });
    // Kept until the next page shows whether it was saved (see tidy).
    form.addEventListener("submit", function () {
      save(true);
    });
  }

  function forgetOnSignOut(user) {
    document.querySelectorAll('form[action$="/logout/"]').forEach(function (form) {
      form.addEventListener("submit", function () {
        draftKeys().forEach(function (key) {
          if (key.indexOf(PREFIX + user + ":") === 0) {
            window.localStorage.removeItem(key);
          }
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const user = document.body.dataset.user;
    if (!user || !window.localStorage) {
      return;
    }
    tidy(user);
    forgetOnSignOut(user);
    document.querySelectorAll("form[data-keep-draft]").forEach(function (form) {
      keep(form, user);
    });
  });
})();
