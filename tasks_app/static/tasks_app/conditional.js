// Shows a block only while a form control has one of the listed values:
// <div data-show-if="principal_type=assumed_role,federated_user">. Hidden
// blocks are ignored by the server too; without JavaScript all stay visible.
// <form data-exclude-chosen="owner=shared_with">: the shared_with checkbox of the
// team chosen as owner is hidden and cleared (the owner uses it anyway; the server
// refuses it with a message when JavaScript is off).
(function () {
  "use strict";
  for (const form of document.querySelectorAll("form[data-conditional]")) {
    const blocks = [...form.querySelectorAll("[data-show-if]")].map((el) => {
      const [name, values] = el.dataset.showIf.split("=");
      return { el, name, values: values.split(",") };
    });
    const valueOf = (name) => {
      const controls = form.elements.namedItem(name);
      if (!controls) return null;
      if (controls instanceof RadioNodeList) return controls.value;
      return controls.value;
    };
    const update = () => {
      for (const block of blocks) {
        block.el.hidden = !block.values.includes(valueOf(block.name));
      }
      if (form.dataset.excludeChosen) {
        const [source, target] = form.dataset.excludeChosen.split("=");
        const chosen = valueOf(source);
        for (const box of form.querySelectorAll(`input[name="${target}"]`)) {
          const label = box.closest("label") || box.parentElement;
          const hide = chosen !== null && box.value === chosen;
          label.hidden = hide;
          if (hide) box.checked = false;
        }
      }
    };
    form.addEventListener("change", update);
    update();
  }
})();
