// "Now" and "Today" buttons beside date-time and date fields: one tap instead of a picker.
// The time is the hospital's (the <body>'s data-time-zone, settings.TIME_ZONE), whatever
// the tablet's own clock zone; the button labels come translated from the page.
(function () {
  "use strict";

  function hospitalNow(timeZone) {
    const parts = {};
    new Intl.DateTimeFormat("en-CA", {
      timeZone: timeZone || undefined,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    })
      .formatToParts(new Date())
      .forEach(function (part) {
        parts[part.type] = part.value;
      });
    return {
      date: parts.year + "-" + parts.month + "-" + parts.day,
      time: parts.hour + ":" + parts.minute,
    };
  }

  function addButton(input, label, timeZone) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-outline-secondary registry-fill-now";
    button.textContent = label;
    button.addEventListener("click", function () {
      const now = hospitalNow(timeZone);
      input.value = input.type === "date" ? now.date : now.date + "T" + now.time;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    const group = document.createElement("div");
    group.className = "input-group";
    input.parentNode.insertBefore(group, input);
    group.appendChild(input);
    group.appendChild(button);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const body = document.body.dataset;
    document
      .querySelectorAll('form input[type="datetime-local"], form input[type="date"]')
      .forEach(function (input) {
        if (input.disabled || input.readOnly || input.closest(".input-group")) {
          return;
        }
        const label = input.type === "date" ? body.labelToday : body.labelNow;
        if (label) {
          addButton(input, label, body.timeZone);
        }
      });
  });
})();
