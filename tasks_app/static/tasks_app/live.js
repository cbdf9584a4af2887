// Progressive enhancement for forms and lists; without JavaScript everything
// works by full page loads.
//
// <form data-live="#a,#b">: submitted with fetch; the answer's #a and #b replace
// this page's, and #messages is announced. The button says it is busy meanwhile.
// <div id="x" data-poll="2">: while it holds [data-busy] rows (running, or queued
// for the scheduler), the page is fetched again every 2 s and #x replaced (with the
// elements named in data-poll-also), for at most two minutes; a row that becomes
// due meanwhile ("portal:due", from countdown.js) starts those two minutes again.
// Revealed values (<div data-revealed data-credential="…">) stay revealed across polls
// while the credential is the same; a poll that began before a form's answer arrived
// is dropped, so that it never puts back what the answer replaced.
(function () {
  "use strict";
  const status = document.getElementById("live-status");
  const announce = (text) => { if (status) status.textContent = text; };

  const swap = (html, selectors) => {
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const shown of document.querySelectorAll("[data-revealed][data-credential][id]")) {
      const fresh = doc.getElementById(shown.id);
      if (fresh && !fresh.hasAttribute("data-revealed")) {
        if (fresh.dataset.credential === shown.dataset.credential) {
          fresh.replaceWith(shown.cloneNode(true));
        } else {
          announce("New credentials were fetched; reveal them again to see their values.");
        }
      }
    }
    for (const selector of selectors) {
      const fresh = doc.querySelector(selector);
      const current = document.querySelector(selector);
      if (fresh && current) current.replaceWith(fresh);
    }
    const messages = document.getElementById("messages");
    if (selectors.includes("#messages") && messages && messages.textContent.trim()) {
      announce(messages.textContent.trim());
    }
    document.dispatchEvent(new CustomEvent("portal:swapped"));
  };

  let polls = 0;
  let waiting = false;
  let answers = 0; // form answers swapped in so far: a poll older than the last is stale
  const poll = () => {
    const box = document.querySelector("[data-poll]");
    if (waiting || !box || !box.querySelector("[data-busy]") || polls > 60) return;
    polls += 1;
    waiting = true;
    setTimeout(async () => {
      const asked = answers;
      try {
        const answer = await fetch(window.location.href, { credentials: "same-origin" });
        const also = (box.dataset.pollAlso || "").split(",").filter(Boolean);
        const html = answer.ok ? await answer.text() : "";
        if (html && asked === answers) swap(html, ["#" + box.id, ...also]);
      } catch (error) {
        // Offline for a moment: the next poll tries again.
      }
      waiting = false;
      if (!document.querySelector("[data-poll] [data-busy]")) announce("All refreshes finished.");
      poll();
    }, Number(box.dataset.poll || 2) * 1000);
  };
  document.addEventListener("portal:due", () => { polls = 0; poll(); });

  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-live]");
    if (!form) return;
    event.preventDefault();
    const button = form.querySelector("button[type=submit], button:not([type])");
    const label = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = form.dataset.busyText || "Working…";
    }
    announce(form.dataset.busyText || "Working…");
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      const html = await answer.text();
      answers += 1;
      const regions = form.dataset.live.split(",");
      swap(html, [...regions, "#messages"]);
      if (status && status.textContent === (form.dataset.busyText || "Working…")) {
        // No message: say what the answer's alert says (a refusal), or that it is done.
        const alert = document.querySelector(regions.map((r) => r + " [role=alert]").join(","));
        announce(alert ? alert.textContent.trim() : "Done.");
      }
      polls = 0;
      poll();
    } catch (error) {
      announce("The request failed; reload the page and try again.");
    } finally {
      if (button && document.contains(button)) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.textContent = label;
      }
    }
  });
  poll();
})();
