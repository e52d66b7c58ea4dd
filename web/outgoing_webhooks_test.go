package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/patronage/patronage/members"
)

// Admins register, change, rotate and remove the newsroom's endpoints over
// the API; the secret is shown at creation and rotation only; bad input
// is named field by field and stores nothing; a private address is refused.
func TestAdminsManageWebhookEndpoints(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleAdmin)
	admin := []string{"Authorization", "Bearer " + token}
	const base = "/api/v1/staff/webhook-endpoints"

	for body, field := range map[string]string{
		`{"url":"http://127.0.0.1:9000/hook","events":["*"]}`:            "url",
		`{"url":"http://169.254.169.254/latest","events":["*"]}`:         "url",
		`{"url":"https://93.184.215.14/hook","events":["member.eaten"]}`: "events",
		`{"url":"https://93.184.215.14/hook"}`:                           "events",
	} {
		rec := postJSON(h, base, body, admin...)
		var out struct {
			Error struct{ Fields map[string]string }
		}
		json.Unmarshal(rec.Body.Bytes(), &out)
		if rec.Code != http.StatusUnprocessableEntity || out.Error.Fields[field] == "" {
			t.Errorf("POST %s = %d %s, want 422 naming %s", body, rec.Code, rec.Body, field)
		}
	}
	if rec := do(h, "GET", base, "", nil, admin...); !strings.Contains(rec.Body.String(), `"endpoints":[]`) {
		t.Fatalf("refused endpoints were stored: %s", rec.Body)
	}

	rec := postJSON(h, base, `{"url":"https://93.184.215.14/hooks/patronage","events":["membership.ended","membership.activated"],"description":"CMS"}`, admin...)
	var created struct {
		Endpoint struct {
			ID, URL, Status string
			Events          []string
		}
		Secret string
	}
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &created) != nil || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	if created.Endpoint.Status != "enabled" || strings.Join(created.Endpoint.Events, ",") != "membership.activated,membership.ended" {
		t.Errorf("created %+v", created.Endpoint)
	}
	one := base + "/" + created.Endpoint.ID
	if rec := do(h, "GET", base, "", nil, admin...); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), created.Secret) ||
		!strings.Contains(rec.Body.String(), "topic.covered") {
		t.Fatalf("list = %d %s: want the endpoint and the event types, without the secret", rec.Code, rec.Body)
	}
	if rec := do(h, "PATCH", one, "application/json", strings.NewReader(`{"disabled":true}`), admin...); rec.Code != http.StatusOK ||
		!strings.Contains(rec.Body.String(), `"status":"disabled"`) {
		t.Fatalf("disable = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "PATCH", one, "application/json", strings.NewReader(`{"url":"gopher://x"}`), admin...); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("bad url = %d %s", rec.Code, rec.Body)
	}
	rec = postJSON(h, one+"/rotate-secret", ``, admin...)
	var rotated struct{ Secret string }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &rotated) != nil || rotated.Secret == created.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotate = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", one+"/deliveries", "", nil, admin...); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"deliveries":[]`) {
		t.Fatalf("deliveries = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", one+"/deliveries?limit=0", "", nil, admin...); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("deliveries?limit=0 = %d %s", rec.Code, rec.Body)
	}
	if rec := postJSON(h, one+"/deliveries/whd_nope/redeliver", ``, admin...); rec.Code != http.StatusConflict && rec.Code != http.StatusNotFound {
		t.Fatalf("redeliver unknown = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "DELETE", one, "", nil, admin...); rec.Code != http.StatusNoContent {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", one, "", nil, admin...); rec.Code != http.StatusNotFound {
		t.Fatalf("after delete = %d %s", rec.Code, rec.Body)
	}
	// The audit log has every change, and no secret.
	rec = do(h, "GET", "/api/v1/staff/audit", "", nil, admin...)
	for _, action := range []string{"webhook_endpoint.create", "webhook_endpoint.update", "webhook_endpoint.rotate_secret", "webhook_endpoint.delete"} {
		if !strings.Contains(rec.Body.String(), action) {
			t.Errorf("audit log lacks %s", action)
		}
	}
	if strings.Contains(rec.Body.String(), "whsec_") {
		t.Error("a signing secret reached the audit log")
	}
}
