// Small progressive enhancements; every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // "Go back" links (inline javascript: URLs are blocked by the Content-Security-Policy).
  for (const a of document.querySelectorAll("a[data-back]")) {
    a.setAttribute("href", "#");
    a.addEventListener("click", (e) => { e.preventDefault(); history.back(); });
  }
  // Ask before actions that cannot be undone.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
});
