// accessbot console: the in-app login (免登). Inside the DingTalk client the JSAPI hands this
// page an auth code without a prompt; the page then opens /console/auth/inapp with it and the
// state of this page. Outside DingTalk (or when the JSAPI did not load) nothing happens and the
// QR-code button stays. No inline script: the page's CSP allows only files like this one.
(function () {
  "use strict";
  var box = document.getElementById("inapp");
  var dd = window.dd;
  if (!box || !dd || !dd.env || dd.env.platform === "notInDingTalk") {
    return;
  }
  var corpId = box.getAttribute("data-corp-id");
  var state = box.getAttribute("data-state");
  dd.ready(function () {
    dd.runtime.permission.requestAuthCode({
      corpId: corpId,
      onSuccess: function (info) {
        var q = "authCode=" + encodeURIComponent(info.code) + "&state=" + encodeURIComponent(state);
        window.location.replace("/console/auth/inapp?" + q);
      },
      onFail: function () { /* the QR-code button remains */ }
    });
  });
})();
