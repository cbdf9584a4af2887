// Turns [data-tabs] blocks into tabs; without JavaScript every panel shows.
(function () {
  "use strict";
  const init = () => {
  for (const block of document.querySelectorAll("[data-tabs]:not([data-tabs-ready])")) {
    block.dataset.tabsReady = "";
    const list = block.querySelector("[role=tablist]");
    const tabs = [...list.querySelectorAll("[role=tab]")];
    const panels = tabs.map((tab) => document.getElementById(tab.getAttribute("aria-controls")));
    const select = (index, focus) => {
      tabs.forEach((tab, i) => {
        tab.setAttribute("aria-selected", String(i === index));
        tab.tabIndex = i === index ? 0 : -1;
        panels[i].hidden = i !== index;
      });
      if (focus) tabs[index].focus();
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => select(i, false));
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (step) select((i + step + tabs.length) % tabs.length, true);
      });
    });
    list.hidden = false;
    for (const heading of block.querySelectorAll(".tabpanel > h3")) heading.classList.add("sr-only");
    select(0, false);
  }
  };
  init();
  document.addEventListener("portal:swapped", init);
})();
