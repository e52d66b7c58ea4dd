package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/sqldb"
)

// statusOf is the one place an error kind becomes an HTTP status.
var statusOf = map[errs.Kind]int{
	errs.BadRequest:      http.StatusBadRequest,
	errs.Invalid:         http.StatusUnprocessableEntity,
	errs.Unauthenticated: http.StatusUnauthorized,
	errs.Forbidden:       http.StatusForbidden,
	errs.NotFound:        http.StatusNotFound,
	errs.Conflict:        http.StatusConflict,
	errs.TooLarge:        http.StatusRequestEntityTooLarge,
	errs.UnsupportedType: http.StatusUnsupportedMediaType,
	errs.RateLimited:     http.StatusTooManyRequests,
	errs.Unavailable:     http.StatusServiceUnavailable,
	errs.Internal:        http.StatusInternalServerError,
}

// errorBody is the one shape of every API error.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// fail answers with err in the API's error shape. Internal errors are
// logged with their cause and shown to the client without detail.
func (s *Server) fail(c *gin.Context, err error) {
	e := unavailableOrSelf(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "request failed",
			"request_id", requestID(c), "route", c.FullPath(), "err", err)
		if e.Kind == errs.Internal {
			// Never the cause's text: it may hold SQL or a driver's words.
			e = &errs.Error{Code: string(errs.Internal), Message: "Something went wrong on our side. It has been logged; please try again."}
		}
	}
	c.Abort()
	if c.Writer.Written() {
		return
	}
	if e.Kind == errs.RateLimited && e.Details["retry_after"] != "" {
		c.Header("Retry-After", e.Details["retry_after"])
	}
	c.JSON(status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Fields: e.Fields, Details: e.Details}})
}

// errDependencyDown answers a request the database or Redis could not
// serve because it could not be reached: the client did nothing wrong and
// may retry.
var errDependencyDown = errs.WithCode(errs.Unavailable, "unavailable", "Something this service depends on is not answering; please try again in a moment.")

// unavailableOrSelf is errs.From(err), except that an unexplained failure
// caused by an unreachable database or Redis is told as 503, not as our bug.
func unavailableOrSelf(err error) *errs.Error {
	e := errs.From(err)
	if e.Kind == errs.Internal && (sqldb.IsUnavailable(err) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed)) {
		return &errs.Error{Kind: errs.Unavailable, Code: errDependencyDown.Code, Message: errDependencyDown.Message, Err: err}
	}
	return e
}

func writeError(c *gin.Context, status int, code, message string, fields map[string]string) {
	c.Abort()
	if c.Writer.Written() {
		return
	}
	c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: message, Fields: fields}})
}

var (
	errBodyTooLarge = func(limit int64) *errs.Error {
		return errs.WithCode(errs.TooLarge, "body_too_large", "The request body is larger than %d bytes.", limit)
	}
	errUnsupportedMediaType = errs.WithCode(errs.UnsupportedType, "unsupported_media_type", "This endpoint accepts only application/json.")
)

// decodeJSON reads a JSON request body into dst: one object, no unknown
// fields, within the body limit.
func (s *Server) decodeJSON(c *gin.Context, dst any) error {
	if !isJSONContentType(c.GetHeader("Content-Type")) {
		return errUnsupportedMediaType
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return s.decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge(s.maxBody)
		}
		return errs.WithCode(errs.BadRequest, "invalid_json", "The request body must hold a single JSON value.")
	}
	return nil
}

func (s *Server) decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return errBodyTooLarge(s.maxBody)
	case errors.Is(err, io.EOF):
		return errs.WithCode(errs.BadRequest, "invalid_json", "The request body is empty; send a JSON object.")
	case errors.As(err, &syntax):
		return errs.WithCode(errs.BadRequest, "invalid_json", "The request body is not valid JSON (near byte %d).", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.WithCode(errs.BadRequest, "invalid_json", "The request body is not valid JSON (it ends too soon).")
	case errors.As(err, &typeError):
		if typeError.Field == "" {
			return errs.WithCode(errs.BadRequest, "invalid_json", "The request body must be a JSON %s.", jsonKind(typeError.Type.Kind().String()))
		}
		return errs.InvalidFields(map[string]string{typeError.Field: "must be " + jsonKind(typeError.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errs.InvalidFields(map[string]string{field: "is not a known field"})
	default:
		return errs.WithCode(errs.BadRequest, "invalid_json", "The request body is not valid JSON.")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number"
	case "float32", "float64":
		return "a number"
	default:
		return fmt.Sprintf("a %s", goKind)
	}
}

func isJSONContentType(header string) bool {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
