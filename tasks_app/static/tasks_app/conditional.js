// Shows a block only while a form control has one of the listed values:
// <div data-show-if="principal_type=assumed_role,federated_user">. Hidden
// blocks are ignored by the server too; without JavaScript all stay visible.
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
    };
    form.addEventListener("change", update);
    update();
  }
})();
