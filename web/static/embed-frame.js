// Inside an embedded box (/embed/join, /embed/vote): tell the page that
// embeds it how tall the box is (its content, not the frame), so
// /static/embed.js can size its iframe.
(function () {
  function post() {
    parent.postMessage({ patronage: "size", height: document.documentElement.offsetHeight }, "*");
  }
  window.addEventListener("load", post);
  if (window.ResizeObserver) new ResizeObserver(post).observe(document.documentElement);
})();
