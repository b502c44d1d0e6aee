//! DingTalk login calls for the access console: the OAuth2 web login (QR code) — user access
//! token from the code, `contact/users/me`, unionid → userid — and the in-app login (免登: the
//! JSAPI auth code → `topapi/v2/user/getuserinfo`). The user's access token is used once, to
//! read who they are, and never kept or logged.
use super::error::str_field;
use super::error::{classify_new, DingTalkError, Outcome, Result};
use super::transport::Style;
use super::DingTalkClient;
use crate::domain::ids::DingUserId;
use reqwest::Method;
use serde_json::{json, Value};

/// Who logged in, as DingTalk says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    pub userid: DingUserId,
    pub name: String,
}

fn done(o: Outcome) -> Result<Value> {
    match o {
        Outcome::Done(v) => Ok(v),
        Outcome::AuthFailed(e)
        | Outcome::Throttled(e)
        | Outcome::ServerError(e)
        | Outcome::Fatal(e) => Err(e),
    }
}

impl DingTalkClient {
    /// One new-style call without the app token, answered and classified like the others.
    async fn plain(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| DingTalkError::Http(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| DingTalkError::Http(e.without_url().to_string()))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        done(classify_new(status, v))
    }

    /// Web login: exchanges the authorize page's `authCode` with the app's credentials
    /// (`POST /v1.0/oauth2/userAccessToken`), reads the person (`GET /v1.0/contact/users/me`
    /// with the user's token) and maps their unionid to the org userid
    /// (`topapi/user/getbyunionid`, with the app token). External contacts are refused.
    pub async fn login_with_web_code(&self, code: &str) -> Result<LoggedIn> {
        let body = json!({
            "clientId": self.inner.app_key,
            "clientSecret": self.inner.app_secret.expose(),
            "code": code,
            "grantType": "authorization_code",
        });
        // No app token on this call: the app's credentials are in the body.
        let v = self
            .plain(
                self.inner
                    .http
                    .post(self.api("/v1.0/oauth2/userAccessToken"))
                    .json(&body),
            )
            .await?;
        let user_token = str_field(&v, "accessToken");
        if user_token.is_empty() {
            return Err(DingTalkError::Decode(
                "userAccessToken answer without accessToken".into(),
            ));
        }
        // The user's own token, not the app's: who is this person.
        let me = self
            .plain(
                self.inner
                    .http
                    .get(self.api("/v1.0/contact/users/me"))
                    .header("x-acs-dingtalk-access-token", &user_token),
            )
            .await?;
        let unionid = str_field(&me, "unionId");
        if unionid.is_empty() {
            return Err(DingTalkError::Decode(
                "users/me answer without unionId".into(),
            ));
        }
        let v = self
            .call(
                Style::Legacy,
                Method::POST,
                &self.oapi("/topapi/user/getbyunionid"),
                &[],
                Some(&json!({ "unionid": unionid })),
                true,
            )
            .await?;
        let r = v.get("result").cloned().unwrap_or(Value::Null);
        if r.get("contact_type").and_then(Value::as_i64).unwrap_or(0) != 0 {
            return Err(DingTalkError::PermissionDenied {
                code: "externalContact".into(),
                message: "an external contact, not a member of the organisation".into(),
            });
        }
        let userid = str_field(&r, "userid");
        if userid.is_empty() {
            return Err(DingTalkError::Decode(
                "getbyunionid answer without userid".into(),
            ));
        }
        Ok(LoggedIn {
            userid: DingUserId::new(userid),
            name: str_field(&me, "nick"),
        })
    }

    /// In-app login: the JSAPI auth code (`requestAuthCode`) to the userid
    /// (`POST /topapi/v2/user/getuserinfo`, app token). Codes are single-use, five minutes.
    pub async fn login_with_inapp_code(&self, code: &str) -> Result<LoggedIn> {
        let v = self
            .call(
                Style::Legacy,
                Method::POST,
                &self.oapi("/topapi/v2/user/getuserinfo"),
                &[],
                Some(&json!({ "code": code })),
                // A code is single-use: a retry after a lost answer would be refused anyway.
                false,
            )
            .await?;
        let r = v.get("result").cloned().unwrap_or(Value::Null);
        let userid = str_field(&r, "userid");
        if userid.is_empty() {
            return Err(DingTalkError::Decode(
                "getuserinfo answer without userid".into(),
            ));
        }
        Ok(LoggedIn {
            userid: DingUserId::new(userid),
            name: str_field(&r, "name"),
        })
    }
}
