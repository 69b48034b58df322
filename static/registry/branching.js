// Hide the fields that do not apply (rules.BRANCHING), read from data attributes:
// <div data-branch-controller="circulation" data-branch-value="anterior">; several
// values are separated by spaces (data-branch-value="2b 2c 3").
// Hidden fields are disabled so they are submitted blank. Without this script every
// field stays visible with its "Fill only if ..." note.
(function () {
  "use strict";

  function controllerValue(form, name) {
    const inputs = form.querySelectorAll('[name="' + name + '"]');
    for (const input of inputs) {
      if (input.type === "radio" || input.type === "checkbox") {
        if (input.checked) {
          return input.value;
        }
      } else {
        return input.value;
      }
    }
    return "";
  }

  function update() {
    document.querySelectorAll("[data-branch-controller]").forEach(function (wrapper) {
      const form = wrapper.closest("form");
      if (!form) {
        return;
      }
      const values = wrapper.dataset.branchValue.split(" ");
      const applies = values.includes(controllerValue(form, wrapper.dataset.branchController));
      wrapper.hidden = !applies;
      wrapper.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !applies;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    update();
    document.addEventListener("change", update);
  });
})();
