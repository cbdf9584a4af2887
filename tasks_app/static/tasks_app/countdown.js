// <time datetime="…" data-countdown>: "in 3 h 05 min" / "4 min 09 s ago", kept current;
// data-before / data-after (from the `countdown` tag, tasks_app/templatetags/portal.py, the
// home of these words): "expires in 3 h 05 min" / "expired 4 min 09 s ago".
// With data-due (a next refresh): once the moment passes it says "queued" instead of a
// time in the past, marks its row busy and asks the page to follow the scheduler
// ("portal:due", which live.js answers by polling until the row settles).
(function () {
  "use strict";
  const pad = (n) => String(n).padStart(2, "0");
  const duration = (seconds) => {
    seconds = Math.floor(Math.abs(seconds));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const secs = seconds % 60;
    if (hours >= 48) return `${Math.floor(hours / 24)} days`;
    if (hours) return `${hours} h ${pad(minutes)} min`;
    if (minutes) return `${minutes} min ${pad(secs)} s`;
    return `${secs} s`;
  };
  const update = () => {
    const now = Date.now();
    for (const el of document.querySelectorAll("time[data-countdown]")) {
      const seconds = (Date.parse(el.getAttribute("datetime")) - now) / 1000;
      if (seconds <= 0 && el.hasAttribute("data-due")) {
        el.removeAttribute("data-countdown");
        el.textContent = "queued";
        el.classList.add("badge", "busy");
        const row = el.closest("[data-poll] tr, [data-poll] [data-refresh]");
        if (row) row.setAttribute("data-busy", "");
        document.dispatchEvent(new CustomEvent("portal:due"));
        continue;
      }
      const before = el.getAttribute("data-before") || "";
      const after = el.getAttribute("data-after") || "";
      el.textContent =
        seconds > 0 ? `${before}in ${duration(seconds)}` : `${after}${duration(seconds)} ago`;
      el.classList.toggle("past", seconds <= 0);
    }
  };
  update();
  setInterval(update, 1000);
  document.addEventListener("portal:swapped", update);
})();
