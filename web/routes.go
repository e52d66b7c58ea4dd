package web

import (
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/webhooks"
)

// routes is the table of contents of Patronage's HTTP API and pages: every
// route is registered here and nowhere else.
func (s *Server) routes() {
	// Everything but Stripe's events reads at most MAX_BODY_BYTES.
	e := s.engine.Group("", limitBody(s.maxBody))

	// Operations.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.serveMetrics)
	e.GET("/api/v1/openapi.yaml", s.openAPI)
	e.GET("/.well-known/jwks.json", s.jwks)

	// Pages a reader sees.
	static, _ := fs.Sub(staticFiles, "static")
	e.StaticFS("/static", http.FS(static))
	e.GET("/signin", s.signInPage)
	e.POST("/signin", s.signInForm)
	e.POST("/signout", s.signOutForm)
	e.GET("/account", s.accountPage)
	e.GET("/auth/verify", s.verifySignIn)
	e.GET("/join", s.joinPage)
	e.POST("/join/subscribe", s.joinSubscribe)
	e.POST("/join/gift", s.joinGift)
	e.GET("/checkout/success", s.checkoutSuccessPage)
	e.GET("/checkout/cancel", s.checkoutCancelPage)
	e.POST("/account/billing", s.accountBilling)
	e.POST("/account/language", s.accountLanguageForm)
	e.GET("/vote", s.votePage)
	e.POST("/vote/:id", s.voteForm)
	e.GET("/vote/results/:id", s.voteResultsPage)
	e.GET("/topics/suggest", s.suggestPage)
	e.POST("/topics/suggest", s.suggestForm)
	e.GET("/staff", s.staffDashboard)
	e.GET("/staff/dashboard.csv", s.staffDashboardCSV)
	e.GET("/staff/voting", s.staffVotingPage)
	e.POST("/staff/voting", s.staffVotingForm)
	e.GET("/staff/suggestions", s.staffSuggestionsPage)
	e.POST("/staff/suggestions/:id", s.staffSuggestionForm)
	e.GET("/custom.css", s.customCSSFile)
	e.GET("/embed/join", s.embedJoin)
	e.GET("/embed/vote", s.embedVote)
	e.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/join") })

	// Stripe's events: signed, stored, then acknowledged.
	s.engine.POST("/webhooks/stripe", limitBody(webhooks.MaxBody), s.stripeWebhook)

	// Reader API.
	api := e.Group("/api/v1")
	api.POST("/members", s.signUp)
	api.POST("/auth/magic-link", s.requestMagicLink)
	api.POST("/auth/logout", s.logout)
	api.GET("/me", s.cors, s.me)
	api.PATCH("/me", s.updateMe)
	api.OPTIONS("/me", s.cors)
	api.GET("/me/token", s.cors, s.meToken)
	api.OPTIONS("/me/token", s.cors)
	api.GET("/tiers", s.listTiers)
	api.POST("/checkout/subscription", s.checkoutSubscription)
	api.POST("/checkout/donation", s.checkoutDonation)
	api.POST("/billing/portal", s.billingPortal)
	api.POST("/topics/suggestions", s.suggestTopic)
	api.GET("/rounds", s.listRounds)
	api.GET("/rounds/:id", s.getRound)
	api.GET("/rounds/:id/results", s.roundResults)
	api.GET("/rounds/:id/stream", s.roundStream)
	api.POST("/rounds/:id/votes", s.castVote)
	api.DELETE("/rounds/:id/votes/:topic_id", s.withdrawVote)

	// Staff API: an API token or a staff session.
	staff := api.Group("/staff", s.requireStaff)
	staff.POST("/members", s.staffCreateMember)
	staff.GET("/members", s.staffFindMembers)
	staff.GET("/members.csv", s.requireAdmin, s.staffMembersCSV)
	staff.GET("/members/:id", s.staffGetMember)
	staff.DELETE("/members/:id", s.requireAdmin, s.staffEraseMember)
	staff.GET("/members/:id/billing", s.staffMemberBilling)
	staff.POST("/members/:id/sign-in-link", s.requireAdmin, s.staffSignInLink)
	staff.GET("/members/:id/export", s.requireAdmin, s.staffExportMember)
	staff.POST("/members/:id/complimentary", s.requireAdmin, s.staffGrantComplimentary)
	staff.DELETE("/members/:id/complimentary", s.requireAdmin, s.staffRevokeComplimentary)
	staff.GET("/tiers", s.staffListTiers)
	staff.GET("/audit", s.staffAudit)
	staff.GET("/metrics/summary", s.staffMetricsSummary)
	staff.GET("/fx-rates", s.staffListRates)
	staff.POST("/fx-rates", s.staffSetRate)
	staff.GET("/metrics/mrr", s.staffMetricsMRR)
	staff.GET("/metrics/revenue", s.staffMetricsRevenue)
	staff.GET("/metrics/cohorts", s.staffMetricsCohorts)
	staff.GET("/metrics/tiers", s.staffMetricsTiers)
	staff.POST("/tiers", s.requireAdmin, s.staffCreateTier)
	staff.PATCH("/tiers/:slug", s.requireAdmin, s.staffUpdateTier)
	staff.GET("/stripe/drift", s.staffStripeDrift)
	staff.POST("/topics", s.staffCreateTopic)
	staff.PATCH("/topics/:id", s.staffUpdateTopic)
	staff.GET("/topics/suggestions", s.staffSuggestions)
	staff.POST("/rounds", s.staffCreateRound)
	staff.PATCH("/rounds/:id", s.staffUpdateRound)
	staff.POST("/rounds/:id/close", s.staffCloseRound)
	staff.GET("/webhooks/events", s.staffWebhookEvents)
	staff.POST("/webhooks/events/:id/retry", s.requireAdmin, s.staffRetryWebhookEvent)
	staff.GET("/webhook-endpoints", s.requireAdmin, s.staffListEndpoints)
	staff.POST("/webhook-endpoints", s.requireAdmin, s.staffCreateEndpoint)
	staff.GET("/webhook-endpoints/:id", s.requireAdmin, s.staffGetEndpoint)
	staff.PATCH("/webhook-endpoints/:id", s.requireAdmin, s.staffUpdateEndpoint)
	staff.DELETE("/webhook-endpoints/:id", s.requireAdmin, s.staffDeleteEndpoint)
	staff.POST("/webhook-endpoints/:id/rotate-secret", s.requireAdmin, s.staffRotateEndpointSecret)
	staff.GET("/webhook-endpoints/:id/deliveries", s.requireAdmin, s.staffEndpointDeliveries)
	staff.POST("/webhook-endpoints/:id/deliveries/:delivery_id/redeliver", s.requireAdmin, s.staffRedeliver)
}
