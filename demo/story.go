package demo

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/members"
)

// Staff is the actor the demo's staff actions are recorded under.
var Staff = members.Actor{Label: "demo seed"}

const day = 24 * time.Hour

// tierPlan is a tier the demo newsroom offers: monthly and yearly, in
// euros, dollars and yen (a zero-decimal currency: amounts are whole yen).
type tierPlan struct {
	slug, name, description string
	weight                  int
	monthly                 map[string]int64 // yearly is ten months
}

var tierPlans = []tierPlan{
	{"reader", "Reader", "Keep the newsroom independent, and vote on what it covers next.", 1,
		map[string]int64{"EUR": 500, "USD": 600, "JPY": 800}},
	{"supporter", "Supporter", "Everything Readers have, and twice the say in tier-weighted rounds.", 2,
		map[string]int64{"EUR": 1200, "USD": 1400, "JPY": 1800}},
	{"champion", "Champion", "For those who make the investigations possible.", 3,
		map[string]int64{"EUR": 3000, "USD": 3500, "JPY": 4500}},
}

var currencies = []string{"EUR", "USD", "JPY"}

func (w *world) createTiers(ctx context.Context) error {
	for i, tp := range tierPlans {
		var prices []billing.PriceInput
		for _, cur := range currencies {
			m := tp.monthly[cur]
			prices = append(prices, billing.PriceInput{Currency: cur, Interval: "month", Amount: m},
				billing.PriceInput{Currency: cur, Interval: "year", Amount: 10 * m})
		}
		weight, order := tp.weight, i
		if _, err := w.billing.CreateTier(ctx, Staff, billing.TierInput{Slug: tp.slug, Name: tp.name, Description: tp.description,
			VoteWeight: &weight, SortOrder: &order, Prices: prices}); err != nil {
			return fmt.Errorf("create tier %s: %w", tp.slug, err)
		}
	}
	return nil
}

func (w *world) priceID(ctx context.Context, tier int, currency string, interval billing.Interval) (string, error) {
	t, err := w.billing.FindTier(ctx, tierPlans[tier].slug)
	if err != nil {
		return "", err
	}
	p, ok := t.PriceFor(currency, interval)
	if !ok || p.StripePriceID == "" {
		return "", fmt.Errorf("tier %s has no %s %s price in Stripe", t.Slug, currency, interval)
	}
	return p.StripePriceID, nil
}

// task is something that happens at an instant; the agenda runs tasks in
// time order, ties in the order they were planned.
type task struct {
	at  time.Time
	seq int
	do  func(context.Context) error
}

type agenda []*task

func (a agenda) Len() int { return len(a) }
func (a agenda) Less(i, j int) bool {
	if !a[i].at.Equal(a[j].at) {
		return a[i].at.Before(a[j].at)
	}
	return a[i].seq < a[j].seq
}
func (a agenda) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *agenda) Push(x any)   { *a = append(*a, x.(*task)) }
func (a *agenda) Pop() any {
	old := *a
	t := old[len(old)-1]
	*a = old[:len(old)-1]
	return t
}

// story is one run of the simulation.
type story struct {
	*world
	rng        *rand.Rand
	start, end time.Time
	tasks      agenda
	seq        int
	patrons    []*patron
}

// at plans fn for t; what would happen after the end never does.
func (s *story) at(t time.Time, fn func(context.Context) error) {
	t = t.UTC().Truncate(time.Second)
	if t.After(s.end) {
		return
	}
	s.seq++
	heap.Push(&s.tasks, &task{at: t, seq: s.seq, do: fn})
}

// between is a random instant in (a, b), at least an hour from both ends.
func (s *story) between(a, b time.Time) time.Time {
	span := b.Sub(a) - 2*time.Hour
	if span <= 0 {
		return a.Add(b.Sub(a) / 2)
	}
	return a.Add(time.Hour + time.Duration(s.rng.Int64N(int64(span))))
}

func (s *story) chance(p float64) bool { return s.rng.Float64() < p }

// run plays the whole history: tiers at the start, patrons joining over
// the months (more of them lately, as a program grows), donors, voting
// rounds; a day's events are delivered and processed before the next day
// begins, so every service reads the state of its day.
func (w *world) run(ctx context.Context, opt Options, start, end time.Time) error {
	s := &story{world: w, rng: rand.New(rand.NewPCG(opt.Seed, 0x70a7e0)), start: start, end: end}
	w.clock.set(start)
	w.stripe.SetNow(start)
	if err := w.createTiers(ctx); err != nil {
		return err
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	span := end.Sub(start)
	for i := range opt.Patrons {
		p := s.newPatron(i)
		joinAt := start.Add(time.Hour + time.Duration(math.Pow(s.rng.Float64(), 0.7)*float64(span-2*day)))
		if p.script != "" {
			// The scripted patrons join early, so their stories finish.
			joinAt = start.Add(time.Duration(i+1)*6*time.Hour + day)
		}
		s.at(joinAt, p.join)
	}
	s.planDonors(max(2, opt.Patrons/8))
	s.planRounds(opt.Months)

	current := start
	for s.tasks.Len() > 0 {
		t := heap.Pop(&s.tasks).(*task)
		if !sameDay(t.at, current) {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
		current = t.at
		w.clock.set(t.at)
		w.stripe.SetNow(t.at)
		if err := t.do(ctx); err != nil {
			return fmt.Errorf("demo at %s: %w", t.at.Format(time.DateTime), err)
		}
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	w.clock.set(end)
	if _, err := w.billing.RecomputeDueAccess(ctx); err != nil {
		return err
	}
	for _, p := range s.patrons {
		if p.member != "" {
			w.sum.Patrons++
		}
	}
	return nil
}

func sameDay(a, b time.Time) bool { return a.Truncate(day).Equal(b.Truncate(day)) }

// flush delivers what Stripe did since the last flush and waits for it to
// be processed, then runs the scheduled access recheck as the server's job
// would.
func (w *world) flush(ctx context.Context) error {
	if err := w.pipe.deliver(ctx, w.stripe.TakeEvents()); err != nil {
		return err
	}
	_, err := w.billing.RecomputeDueAccess(ctx)
	return err
}

// patron is one reader's life as a subscriber.
type patron struct {
	s         *story
	n         int
	email     string
	member    string
	currency  string
	interval  billing.Interval
	tier      int
	trial     bool
	coupon    bool
	comebacks int
	// script forces a story for the first few patrons, so even a small
	// run shows every kind of event.
	script string

	sub         string
	status      string // trialing, active, past_due, canceling, ended
	periodEnd   time.Time
	lastCharge  string
	openInvoice string
	retries     int
}

var scripts = []struct {
	name, currency string
	interval       billing.Interval
	tier           int
}{
	{"recover", "EUR", billing.Month, 0},
	{"refund", "USD", billing.Month, 1},
	{"return", "JPY", billing.Month, 0},
	{"upgrade", "EUR", billing.Year, 0},
	{"downgrade", "USD", billing.Year, 2},
	{"trial", "JPY", billing.Year, 1},
	{"coupon", "EUR", billing.Month, 1},
}

func (s *story) newPatron(i int) *patron {
	p := &patron{s: s, n: i, email: fmt.Sprintf("patron%04d@demo.example.org", i+1)}
	if i < len(scripts) {
		sc := scripts[i]
		p.script, p.currency, p.interval, p.tier = sc.name, sc.currency, sc.interval, sc.tier
		p.trial, p.coupon = sc.name == "trial", sc.name == "coupon"
		if sc.name == "return" {
			p.comebacks = 1
		}
		s.patrons = append(s.patrons, p)
		return p
	}
	switch r := s.rng.Float64(); {
	case r < 0.5:
		p.currency = "EUR"
	case r < 0.82:
		p.currency = "USD"
	default:
		p.currency = "JPY"
	}
	p.interval = billing.Month
	if s.chance(0.25) {
		p.interval = billing.Year
	}
	switch r := s.rng.Float64(); {
	case r < 0.55:
		p.tier = 0
	case r < 0.87:
		p.tier = 1
	default:
		p.tier = 2
	}
	p.trial = s.chance(0.15)
	p.coupon = !p.trial && s.chance(0.08)
	if s.chance(0.35) {
		p.comebacks = 1
	}
	s.patrons = append(s.patrons, p)
	return p
}

func (p *patron) now() time.Time { return p.s.clock.now() }

func (p *patron) metadata() map[string]string {
	return map[string]string{"member_id": p.member, "tier": tierPlans[p.tier].slug, "interval": string(p.interval)}
}

// join subscribes the reader: through Checkout, as /join does, or (for a
// trial, which Checkout here does not offer) as staff would in Stripe's
// Dashboard, for the customer billing made for the member.
func (p *patron) join(ctx context.Context) error {
	s := p.s
	m, err := s.members.FindOrCreateMember(ctx, p.email)
	if err != nil {
		return err
	}
	p.member = m.ID
	price, err := s.priceID(ctx, p.tier, p.currency, p.interval)
	if err != nil {
		return err
	}
	s.sum.Subscriptions++
	if p.trial {
		p.trial = false // a returning patron pays at once
		customer, err := s.billing.CustomerFor(ctx, m.ID)
		if err != nil {
			return err
		}
		sub, err := s.stripe.CreateSubscription(customer, price, stripefake.SubscriptionOptions{TrialDays: 14, Metadata: p.metadata()})
		if err != nil {
			return err
		}
		p.sub, p.status = sub["id"].(string), "trialing"
		s.sum.Trials++
		trialEnd := time.Unix(sub["trial_end"].(int64), 0)
		s.at(trialEnd.Add(-3*day), p.trialWillEnd)
		s.at(trialEnd, p.endTrial)
		return nil
	}
	cs, err := s.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{MemberID: m.ID, Tier: tierPlans[p.tier].slug,
		Interval: string(p.interval), Currency: p.currency})
	if err != nil {
		return fmt.Errorf("checkout for %s: %w", p.email, err)
	}
	done, err := s.stripe.CompleteCheckoutSession(cs.ID)
	if err != nil {
		return err
	}
	p.sub, p.status = done["subscription"].(string), "active"
	p.lastCharge = p.chargeOf(done["invoice"].(string))
	p.readPeriod()
	if p.coupon {
		p.coupon = false
		s.at(p.now().Add(2*time.Minute), p.applyCoupon)
	}
	p.plan()
	return nil
}

func (p *patron) chargeOf(invoiceID string) string {
	inv, _ := p.s.stripe.Invoice(invoiceID)
	ch, _ := inv["charge"].(string)
	return ch
}

func (p *patron) readPeriod() {
	sub, _ := p.s.stripe.Subscription(p.sub)
	p.periodEnd = time.Unix(sub["current_period_end"].(int64), 0).UTC()
}

// plan decides what happens during the period that has begun: most
// patrons simply renew at its end; some leave, change tier, or ask for
// their money back.
func (p *patron) plan() {
	s, now := p.s, p.now()
	monthly := p.interval == billing.Month
	churn, change, refund := 0.035, 0.025, 0.01
	if !monthly {
		churn, change, refund = 0.16, 0.08, 0.03
	}
	script := p.script
	p.script = ""
	switch r := s.rng.Float64(); {
	case script == "refund":
		s.at(now.Add(3*day), p.refund)
	case script == "return":
		s.at(now.Add(10*day), p.requestCancel)
	case script == "upgrade" || script == "downgrade":
		s.at(now.Add(20*day), p.changeTier)
	case script == "recover":
		p.script = script // acted on at the renewal
		s.at(p.periodEnd, p.renew)
	case r < churn:
		s.at(s.between(now, p.periodEnd), p.requestCancel)
	case r < churn+change:
		s.at(s.between(now, p.periodEnd), p.changeTier)
	case r < churn+change+refund:
		s.at(now.Add(time.Duration(1+s.rng.IntN(6))*day), p.refund)
	default:
		s.at(p.periodEnd, p.renew)
	}
}

// renew is the end of a period: the card works, or is declined.
func (p *patron) renew(ctx context.Context) error {
	s := p.s
	fail := s.chance(0.06) || p.script == "recover"
	inv, err := s.stripe.RenewSubscription(p.sub, !fail)
	if err != nil {
		return err
	}
	p.readPeriod()
	if fail {
		p.status, p.openInvoice, p.retries = "past_due", inv, 0
		s.sum.FailedPayments++
		s.at(p.now().Add(3*day), p.retry)
		return nil
	}
	p.lastCharge = p.chargeOf(inv)
	if s.chance(0.03) {
		s.at(p.now().Add(time.Duration(1+s.rng.IntN(20))*day), p.donate)
	}
	p.plan()
	return nil
}

// retry is Stripe trying a declined invoice again: paid, or after the
// third failure the subscription is canceled.
func (p *patron) retry(ctx context.Context) error {
	s := p.s
	p.retries++
	if s.chance(0.55) || p.script == "recover" {
		p.script = ""
		if err := s.stripe.PayInvoice(p.openInvoice); err != nil {
			return err
		}
		p.status, p.lastCharge = "active", p.chargeOf(p.openInvoice)
		s.sum.Recovered++
		p.plan()
		return nil
	}
	if p.retries < 3 {
		s.at(p.now().Add(4*day), p.retry)
		return nil
	}
	return p.end(ctx)
}

func (p *patron) requestCancel(ctx context.Context) error {
	s := p.s
	if err := s.stripe.SetCancelAtPeriodEnd(p.sub, true); err != nil {
		return err
	}
	p.status = "canceling"
	if p.comebacks == 0 && s.chance(0.12) {
		s.at(s.between(p.now(), p.periodEnd), p.changeMind)
		return nil
	}
	s.at(p.periodEnd, p.end)
	return nil
}

func (p *patron) changeMind(ctx context.Context) error {
	if err := p.s.stripe.SetCancelAtPeriodEnd(p.sub, false); err != nil {
		return err
	}
	p.status = "active"
	p.s.at(p.periodEnd, p.renew)
	return nil
}

// end ends the subscription; some patrons come back months later.
func (p *patron) end(ctx context.Context) error {
	s := p.s
	if err := s.stripe.EndSubscription(p.sub); err != nil {
		return err
	}
	p.status = "ended"
	s.sum.Churned++
	if p.comebacks > 0 {
		p.comebacks--
		wait := time.Duration(30+s.rng.IntN(150)) * day
		if p.n < len(scripts) {
			wait = 30 * day
		}
		s.at(p.now().Add(wait), p.rejoin)
	}
	return nil
}

func (p *patron) rejoin(ctx context.Context) error {
	s := p.s
	s.sum.Returned++
	if p.n >= len(scripts) && s.chance(0.3) {
		p.tier = s.rng.IntN(len(tierPlans))
	}
	return p.join(ctx)
}

func (p *patron) changeTier(ctx context.Context) error {
	s := p.s
	next := p.tier + 1
	if p.tier == len(tierPlans)-1 || (p.tier > 0 && s.chance(0.4)) {
		next = p.tier - 1
	}
	price, err := s.priceID(ctx, next, p.currency, p.interval)
	if err != nil {
		return err
	}
	if err := s.stripe.ChangePrice(p.sub, price); err != nil {
		return err
	}
	if next > p.tier {
		s.sum.Upgrades++
	} else {
		s.sum.Downgrades++
	}
	p.tier = next
	s.at(p.periodEnd, p.renew)
	return nil
}

// refund gives a patron their last payment back; half of them leave with it.
func (p *patron) refund(ctx context.Context) error {
	s := p.s
	if p.lastCharge != "" {
		if _, err := s.stripe.Refund(p.lastCharge, 0); err != nil {
			return err
		}
		s.sum.Refunds++
	}
	if p.n >= len(scripts) && s.chance(0.5) {
		return p.end(ctx)
	}
	s.at(p.periodEnd, p.renew)
	return nil
}

func (p *patron) applyCoupon(ctx context.Context) error {
	if p.status != "active" {
		return nil
	}
	if err := p.s.stripe.ApplyCoupon(p.sub, 20, 0, "forever", 0); err != nil {
		return err
	}
	p.s.sum.Coupons++
	return nil
}

func (p *patron) trialWillEnd(ctx context.Context) error { return p.s.stripe.TrialWillEnd(p.sub) }

// endTrial: most trials become paying patrons; the others, without a
// card, pause and are canceled a week later.
func (p *patron) endTrial(ctx context.Context) error {
	s := p.s
	pay := s.chance(0.75) || p.script == "trial"
	p.script = ""
	if err := s.stripe.EndTrial(p.sub, pay); err != nil {
		return err
	}
	if !pay {
		p.status = "paused"
		s.at(p.now().Add(7*day), p.end)
		return nil
	}
	p.status = "active"
	p.readPeriod()
	sub, _ := s.stripe.Subscription(p.sub)
	p.lastCharge = p.chargeOf(sub["latest_invoice"].(string))
	p.plan()
	return nil
}

var giftMessages = []string{"", "", "", "Keep digging.", "For the housing series.", "Thank you for the river reporting!", "In memory of my father, a lifelong reader."}

// giftAmount is a typical one-time gift, in minor units.
func (s *story) giftAmount(currency string) int64 {
	choices := map[string][]int64{
		"EUR": {1000, 2000, 2500, 5000, 10000, 25000},
		"USD": {1000, 2500, 5000, 10000, 20000},
		"JPY": {1000, 3000, 5000, 10000, 30000},
	}[currency]
	return choices[s.rng.IntN(len(choices))]
}

// donate is a patron's one-time gift on top of their subscription.
func (p *patron) donate(ctx context.Context) error {
	return p.s.give(ctx, billing.DonationRequest{MemberID: p.member, Currency: p.currency, Amount: p.s.giftAmount(p.currency)}, false)
}

// planDonors plans readers who only give: some with an email (who become
// members), some anonymous; a gift now and then is refunded.
func (s *story) planDonors(n int) {
	span := s.end.Sub(s.start)
	for i := range n {
		cur := currencies[s.rng.IntN(len(currencies))]
		email := fmt.Sprintf("giver%04d@demo.example.org", i+1)
		anonymous := i > 0 && s.chance(0.3)
		gifts := 1 + s.rng.IntN(3)
		for g := range gifts {
			at := s.start.Add(time.Duration(s.rng.Int64N(int64(span - day))))
			if i == 0 && g == 0 {
				at = s.start.Add(3 * day) // the first gift is refunded, always
			}
			req := billing.DonationRequest{Currency: cur, Amount: s.giftAmount(cur), Message: giftMessages[s.rng.IntN(len(giftMessages))]}
			if anonymous {
				req.ClientIP = fmt.Sprintf("203.0.113.%d", i%250+1)
			} else {
				req.Email = email
			}
			refund := (i == 0 && g == 0) || s.chance(0.04)
			s.at(at, func(ctx context.Context) error { return s.give(ctx, req, refund) })
		}
		s.sum.Donors++
	}
}

// give takes a gift through donation Checkout, as /give does.
func (s *story) give(ctx context.Context, req billing.DonationRequest, refund bool) error {
	cs, err := s.billing.StartDonationCheckout(ctx, req)
	if err != nil {
		return fmt.Errorf("donation checkout: %w", err)
	}
	done, err := s.stripe.CompleteCheckoutSession(cs.ID)
	if err != nil {
		return err
	}
	s.sum.Donations++
	if !refund {
		return nil
	}
	pi, _ := s.stripe.PaymentIntent(done["payment_intent"].(string))
	charge, _ := pi["latest_charge"].(string)
	s.at(s.clock.now().Add(2*day), func(ctx context.Context) error {
		if _, err := s.stripe.Refund(charge, 0); err != nil {
			return err
		}
		s.sum.Refunds++
		return nil
	})
	return nil
}
