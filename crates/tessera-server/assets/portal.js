// Copy buttons: <button data-copy="ID"> copies the text of the element with
// that id. Loaded from /assets, never inline, so the CSP stays strict.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  event.preventDefault();
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    button.textContent = "Copied";
  });
});
