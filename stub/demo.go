package stub

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Demo returns an Options.Handler that answers the internal paths the demo
// config's aggregates call with plausible JSON naming instance id. Other
// paths get the stub's default answer.
//
//	/api/internal/users/{id}/profile           user-service
//	/api/internal/users/{id}/posts?limit=N     post-service
//	/api/internal/feed/{id}?limit=N            post-service
//	/api/internal/notifications/{id}/count     notification-service
//	/api/internal/notifications/{id}/summary   notification-service
//	/api/internal/trending?limit=N             analytics-service
//	/api/internal/analytics/users/{id}/summary analytics-service
//	/api/internal/media/users/{id}/usage       media-service
//
// Answers depend only on the path, so repeated calls agree.
func Demo(id string) func(ctx *fasthttp.RequestCtx) bool {
	instance := strconv.AppendQuote([]byte(`,"instance":`), id)
	return func(ctx *fasthttp.RequestCtx) bool {
		return demoAnswer(ctx, instance)
	}
}

// demoRoute is one internal path: its segments after /api/internal/, with
// "*" for the user id.
type demoRoute struct {
	segs  []string
	write func(b, user []byte, limit int) []byte
}

var demoRoutes = [...]demoRoute{
	{[]string{"users", "*", "profile"}, demoProfile},
	{[]string{"users", "*", "posts"}, demoPosts},
	{[]string{"feed", "*"}, demoPosts},
	{[]string{"notifications", "*", "count"}, demoUnread},
	{[]string{"notifications", "*", "summary"}, demoNotifications},
	{[]string{"trending"}, demoTrending},
	{[]string{"analytics", "users", "*", "summary"}, demoAnalytics},
	{[]string{"media", "users", "*", "usage"}, demoMedia},
}

var demoPrefix = []byte("/api/internal/")

func demoAnswer(ctx *fasthttp.RequestCtx, instance []byte) bool {
	path := ctx.Request.URI().PathOriginal()
	if !bytes.HasPrefix(path, demoPrefix) {
		return false
	}
	rest := path[len(demoPrefix):]
	for i := range demoRoutes {
		r := &demoRoutes[i]
		user, ok := matchDemo(rest, r.segs)
		if !ok {
			continue
		}
		limit := ctx.QueryArgs().GetUintOrZero("limit")
		if limit <= 0 || limit > 20 {
			limit = 5
		}
		var buf [4096]byte
		b := r.write(append(buf[:0], '{'), user, limit)
		b = append(append(b, instance...), '}')
		ctx.SetContentType("application/json")
		ctx.Response.SetBody(b)
		return true
	}
	return false
}

// matchDemo matches the segments of path against segs ("*" matches any
// non-empty segment, returned as the user id).
func matchDemo(path []byte, segs []string) (user []byte, ok bool) {
	for i, s := range segs {
		seg := path
		if j := bytes.IndexByte(path, '/'); j >= 0 {
			seg, path = path[:j], path[j+1:]
		} else {
			path = nil
			if i != len(segs)-1 {
				return nil, false
			}
		}
		switch {
		case s == "*" && len(seg) > 0:
			user = seg
		case s != string(seg):
			return nil, false
		}
	}
	return user, len(path) == 0
}

// demoNum is a number in [0, n) that depends only on user and salt.
func demoNum(user []byte, salt string, n uint32) int64 {
	h := uint32(2166136261) // FNV-1a
	for _, c := range user {
		h = (h ^ uint32(c)) * 16777619
	}
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint32(salt[i])) * 16777619
	}
	return int64(h % n)
}

func appendUser(b, user []byte) []byte {
	b = append(b, `"user_id":"`...)
	return append(appendJSONEscaped(b, user), '"')
}

func appendIntField(b []byte, name string, v int64) []byte {
	b = append(append(append(b, ",\""...), name...), "\":"...)
	return strconv.AppendInt(b, v, 10)
}

func demoProfile(b, user []byte, _ int) []byte {
	b = appendUser(b, user)
	b = append(b, `,"name":"Demo User `...)
	b = appendJSONEscaped(b, user)
	b = append(b, `","handle":"@user`...)
	b = appendJSONEscaped(b, user)
	b = append(b, `","bio":"Writes about Go, queues and gateways.","verified":false`...)
	b = appendIntField(b, "followers", 40+demoNum(user, "followers", 5000))
	b = appendIntField(b, "following", 10+demoNum(user, "following", 400))
	return append(b, `,"joined":"2021-03-14"`...)
}

var demoTexts = [...]string{
	"Shipped the new release today.",
	"Anyone else benchmarking fasthttp this week?",
	"Coffee, then code review.",
	"p99 latency finally under 2 ms.",
	"Reading about smooth weighted round-robin.",
}

func demoPosts(b, user []byte, limit int) []byte {
	b = appendUser(b, user)
	b = append(b, `,"posts":[`...)
	now := time.Now().UTC().Truncate(time.Minute)
	base := demoNum(user, "posts", 90000) + 10000
	for i := range limit {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"p`...)
		b = strconv.AppendInt(b, base-int64(i), 10)
		b = append(b, `","author":"@user`...)
		b = strconv.AppendInt(b, (base+int64(i)*7)%997, 10)
		b = append(b, `","text":`...)
		b = strconv.AppendQuote(b, demoTexts[(int(base)+i)%len(demoTexts)])
		b = appendIntField(b, "likes", (base*int64(i+3))%311)
		b = append(b, `,"created_at":"`...)
		b = now.Add(-time.Duration(i*17)*time.Minute).AppendFormat(b, time.RFC3339)
		b = append(b, `"}`...)
	}
	b = append(b, `],"next_cursor":"p`...)
	b = strconv.AppendInt(b, base-int64(limit), 10)
	return append(b, '"')
}

func demoUnread(b, user []byte, _ int) []byte {
	b = appendUser(b, user)
	return appendIntField(b, "unread", demoNum(user, "unread", 12))
}

func demoNotifications(b, user []byte, _ int) []byte {
	b = demoUnread(b, user, 0)
	b = append(b, `,"latest":[{"type":"like","from":"@user`...)
	b = strconv.AppendInt(b, demoNum(user, "like", 997), 10)
	b = append(b, `"},{"type":"follow","from":"@user`...)
	b = strconv.AppendInt(b, demoNum(user, "follow", 997), 10)
	return append(b, `"}]`...)
}

var demoTags = [...]string{"#golang", "#fasthttp", "#observability", "#latency", "#edge", "#kubernetes", "#rust", "#sre", "#postgres", "#wasm"}

func demoTrending(b, _ []byte, limit int) []byte {
	b = append(b, `"topics":[`...)
	hour := time.Now().Hour()
	for i := 0; i < limit && i < len(demoTags); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"tag":"`...)
		b = append(b, demoTags[(hour+i)%len(demoTags)]...)
		b = append(b, '"')
		b = appendIntField(b, "posts", int64(4000/(i+1)+hour*13))
		b = append(b, '}')
	}
	return append(b, ']')
}

func demoAnalytics(b, user []byte, _ int) []byte {
	b = appendUser(b, user)
	b = append(b, `,"period":"7d"`...)
	b = appendIntField(b, "views", 100+demoNum(user, "views", 20000))
	b = appendIntField(b, "likes", demoNum(user, "likes", 3000))
	return appendIntField(b, "new_followers", demoNum(user, "new_followers", 90))
}

func demoMedia(b, user []byte, _ int) []byte {
	b = appendUser(b, user)
	b = appendIntField(b, "files", demoNum(user, "files", 300))
	b = appendIntField(b, "bytes_used", demoNum(user, "bytes", 1<<30))
	return appendIntField(b, "quota_bytes", 1<<30)
}
