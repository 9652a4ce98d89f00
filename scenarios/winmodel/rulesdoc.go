package winmodel

import (
	_ "embed"
	"strings"
	"text/template"
	"time"

	"github.com/fidolab/fidolab/scenarios/entra"
)

// windowsModelTmpl is the prose of docs/windows-model.md; Rules and Permits fill its tables.
//
//go:embed windows-model.md.tmpl
var windowsModelTmpl string

var windowsModelPage = template.Must(template.New("windows-model.md").Funcs(template.FuncMap{
	"esc":  func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }, // a | would end a table cell
	"join": strings.Join,
	"inc":  func(i int) int { return i + 1 },
}).Parse(windowsModelTmpl))

// Markdown renders docs/windows-model.md: the rule table, the permits and what the model does over
// CTAP, each with its source.
func Markdown() string {
	var b strings.Builder
	err := windowsModelPage.Execute(&b, struct {
		RPID             string
		CredProtectLevel int
		Rules            []Rule
		Permits          []Permit
		OrderNote        string
		SilenceLimit     time.Duration
	}{entra.RPID, int(entra.CredProtectLevel), Rules, Permits, orderNote, SilenceLimit})
	if err != nil {
		panic(err) // the template and its data are constants; TestDocUpToDate executes it
	}
	return b.String()
}
