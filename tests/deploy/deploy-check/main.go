// deploy-check: the parsers scripts/validate-deploy.sh needs from Go, where
// the reference implementations live.
//
//	deploy-check compose FILE OUT
//	                            load FILE with compose-go, the compose
//	                            specification's own loader (schema, then
//	                            semantics), write the resolved project to OUT
//	                            as JSON and list its services
//	deploy-check dockerfile FILE parse FILE with BuildKit's Dockerfile parser
//	                            and instruction reader (what `docker build`
//	                            reads first), and list its stages
//	deploy-check promql         read a JSON array of PromQL expressions on
//	                            stdin, parse each with Prometheus's parser,
//	                            and print, for each, the metrics it selects
//	                            (with the labels it matches on) and the labels
//	                            its aggregations group by; exit 1 naming the
//	                            first expression that does not parse
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "compose":
		if len(os.Args) != 4 {
			usage()
		}
		err = loadCompose(os.Args[2], os.Args[3])
	case "dockerfile":
		if len(os.Args) != 3 {
			usage()
		}
		err = parseDockerfile(os.Args[2])
	case "promql":
		err = metricNames(os.Stdin, os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy-check %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: deploy-check compose FILE OUT | deploy-check dockerfile FILE | deploy-check promql < expressions.json")
	os.Exit(2)
}

// loadCompose loads a compose file as `docker compose config` does and
// writes the resolved project to out.
func loadCompose(file, out string) error {
	options, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	text, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(text, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("ok -- %d services: %s\n", len(project.Services), strings.Join(project.ServiceNames(), " "))
	return nil
}

// Selector is one metric selector of an expression: the metric's name and
// the labels it matches on.
type Selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

// Grouping is one aggregation's `by (...)` labels and the metrics beneath it.
type Grouping struct {
	Labels  []string `json:"labels"`
	Metrics []string `json:"metrics"`
}

// Uses is what one expression reads.
type Uses struct {
	Selectors []Selector `json:"selectors"`
	Groupings []Grouping `json:"groupings"`
}

// parseDockerfile reads a Dockerfile as BuildKit does before it builds:
// every instruction and flag known, every stage well formed. A warning of
// the parser or of the lint rules that run while reading is an error here.
func parseDockerfile(file string) error {
	text, err := os.Open(file)
	if err != nil {
		return err
	}
	defer text.Close()
	parsed, err := dockerfile.Parse(text)
	if err != nil {
		return err
	}
	var warnings []string
	for _, warning := range parsed.Warnings {
		warnings = append(warnings, warning.Short)
	}
	lint := linter.New(&linter.Config{
		Warn: func(rule, _, _, message string, _ []dockerfile.Range) {
			warnings = append(warnings, rule+": "+message)
		},
	})
	stages, _, err := instructions.Parse(parsed.AST, lint)
	if err != nil {
		return err
	}
	if len(warnings) > 0 {
		return fmt.Errorf("%s", strings.Join(warnings, "; "))
	}
	for _, stage := range stages {
		name := stage.Name
		if name == "" {
			name = "(final)"
		}
		fmt.Printf("ok -- stage %s: FROM %s, %d instructions\n", name, stage.BaseName, len(stage.Commands))
	}
	return nil
}

// metricNames prints, for each expression read, its selectors and its
// aggregations' grouping labels.
func metricNames(in io.Reader, out io.Writer) error {
	var expressions []string
	if err := json.NewDecoder(in).Decode(&expressions); err != nil {
		return fmt.Errorf("reading the expressions: %w", err)
	}
	promql := parser.NewParser(parser.Options{})
	all := make([]Uses, 0, len(expressions))
	for _, text := range expressions {
		expr, err := promql.ParseExpr(text)
		if err != nil {
			return fmt.Errorf("%q does not parse: %w", text, err)
		}
		uses := Uses{Selectors: []Selector{}, Groupings: []Grouping{}}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			switch node := node.(type) {
			case *parser.VectorSelector:
				uses.Selectors = append(uses.Selectors, selectorOf(node))
			case *parser.AggregateExpr:
				if !node.Without && len(node.Grouping) > 0 {
					uses.Groupings = append(uses.Groupings, Grouping{
						Labels:  append([]string{}, node.Grouping...),
						Metrics: metricsUnder(node.Expr),
					})
				}
			}
			return nil
		})
		all = append(all, uses)
	}
	return json.NewEncoder(out).Encode(all)
}

func selectorOf(node *parser.VectorSelector) Selector {
	labels := []string{}
	for _, matcher := range node.LabelMatchers {
		if matcher.Name != "__name__" {
			labels = append(labels, matcher.Name)
		}
	}
	sort.Strings(labels)
	return Selector{Metric: node.Name, Labels: labels}
}

// metricsUnder lists the metric names of the selectors inside expr.
func metricsUnder(expr parser.Expr) []string {
	seen := map[string]bool{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if selector, ok := node.(*parser.VectorSelector); ok {
			seen[selector.Name] = true
		}
		return nil
	})
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
