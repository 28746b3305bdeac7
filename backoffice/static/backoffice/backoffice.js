// Progressive enhancement only: the server already refuses a second submit of the
// same one-time form key. This just stops the second click from being sent.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.submitted) { event.preventDefault(); return; }
  form.dataset.submitted = "1";
  setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  }, 0);
});
