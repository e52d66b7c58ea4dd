// On the newsroom's page, beside an <iframe src=".../embed/join"> or
// ".../embed/vote": sizes each such iframe to its content.
// <script src="https://patrons.example.org/static/embed.js" async></script>
(function () {
  var script = document.currentScript;
  var origin = script ? new URL(script.src).origin : "";
  window.addEventListener("message", function (e) {
    if (e.origin !== origin || !e.data || e.data.patronage !== "size") return;
    var frames = document.getElementsByTagName("iframe");
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow === e.source) frames[i].style.height = Math.ceil(e.data.height) + "px";
    }
  });
})();
