// <time datetime="…" data-countdown>: "in 3 h 05 min" / "4 min 09 s ago", kept current.
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
      el.textContent = seconds > 0 ? `in ${duration(seconds)}` : `${duration(seconds)} ago`;
      el.classList.toggle("past", seconds <= 0);
    }
  };
  update();
  setInterval(update, 1000);
})();
