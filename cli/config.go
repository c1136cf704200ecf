package cli

// The configuration file. The choice: koanf (github.com/knadh/koanf/v2)
// reads and flattens the YAML file ("serve.workers"); the precedence and
// the provenance of each value are applied here, flag by flag, because
// cobra already owns the flags, their defaults and their parsing (viper
// would bring a second registry of settings to keep in step with them).

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobrunner/jobrunner/jobs"
)

// Sources of a setting's value, as `jobrunner config` shows them.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceDefault = "default"
)

// envAliases are the environment variables that settings had before the
// configuration file; they still work (the JOBRUNNER_<NAME> form too).
var envAliases = map[string]string{
	"serve.base-url": "JOBRUNNER_BASE_URL",
}

// setting is one configurable flag.
type setting struct {
	key    string // file key: "db", "serve.workers"
	env    string // environment variable
	flag   *pflag.Flag
	source string
}

// configKey returns a flag's key in the configuration file: a root
// (global) flag by its name, a command's own flag under the command's
// path ("serve.workers", "runs.list.limit").
func configKey(cmd *cobra.Command, f *pflag.Flag, global bool) string {
	if global {
		return f.Name
	}
	path := strings.Fields(cmd.CommandPath())[1:] // drop "jobrunner"
	return strings.Join(append(path, f.Name), ".")
}

// envName is the environment variable of a file key: JOBRUNNER_ and the
// key upper-cased with "." and "-" as "_" (serve.lease-ttl →
// JOBRUNNER_SERVE_LEASE_TTL; db → JOBRUNNER_DB).
func envName(key string) string {
	return "JOBRUNNER_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(key))
}

// settings lists the configurable flags of cmd: the global ones and its
// own, except help, version and config itself.
func settingsOf(cmd *cobra.Command) []*setting {
	var out []*setting
	seen := map[string]bool{}
	add := func(f *pflag.Flag, global bool) {
		if f.Name == "help" || f.Name == "version" || f.Name == "config" || seen[f.Name] {
			return
		}
		seen[f.Name] = true
		key := configKey(cmd, f, global)
		out = append(out, &setting{key: key, env: envName(key), flag: f, source: sourceDefault})
	}
	cmd.Root().PersistentFlags().VisitAll(func(f *pflag.Flag) { add(f, true) })
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { add(f, false) })
	return out
}

// applyConfig sets every flag of cmd that was not given on the command
// line from its environment variable, else from the configuration file
// (--config / JOBRUNNER_CONFIG): flags > environment > file > defaults.
// An unreadable file, a key no command has, or a value a flag refuses is
// a usage error naming the file and key. It records each value's source.
func (a *app) applyConfig(cmd *cobra.Command) error {
	path := a.configFlag
	if path == "" {
		path = os.Getenv("JOBRUNNER_CONFIG")
	}
	k := koanf.New(".")
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return usagef("--config %s: %v", path, err)
		}
		if err := checkKeys(cmd.Root(), k, path); err != nil {
			return err
		}
	}
	a.settings = settingsOf(cmd)
	for _, s := range a.settings {
		if s.flag.Changed {
			s.source = sourceFlag
			continue
		}
		if v, ok := os.LookupEnv(s.env); ok {
			if err := s.flag.Value.Set(v); err != nil {
				return usagef("%s=%q: %v", s.env, v, err)
			}
			s.source = sourceEnv
			continue
		}
		if alias := envAliases[s.key]; alias != "" {
			if v, ok := os.LookupEnv(alias); ok {
				if err := s.flag.Value.Set(v); err != nil {
					return usagef("%s=%q: %v", alias, v, err)
				}
				s.source = sourceEnv
				continue
			}
		}
		if k.Exists(s.key) {
			v := k.Get(s.key)
			text := fmt.Sprint(v)
			if list, ok := v.([]any); ok {
				parts := make([]string, len(list))
				for i, x := range list {
					parts[i] = fmt.Sprint(x)
				}
				text = strings.Join(parts, ",")
			}
			if err := s.flag.Value.Set(text); err != nil {
				return usagef("%s: %s: %v", path, s.key, err)
			}
			s.source = sourceFile + " " + path
		}
	}
	return nil
}

// checkKeys refuses keys of the file that name no flag of any command.
func checkKeys(root *cobra.Command, k *koanf.Koanf, path string) error {
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range settingsOf(c) {
			known[s.key] = true
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	var bad []string
	for _, key := range k.Keys() {
		if !known[key] {
			bad = append(bad, key)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return usagef("--config %s: unknown settings %s (keys are global flag names such as db, log-level, and command flags under the command: serve.workers, serve.grace)",
			path, strings.Join(bad, ", "))
	}
	return nil
}

// configCommand is `jobrunner config [COMMAND]`: the effective settings
// of a command (default serve) and where each value came from.
func (a *app) configCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config [COMMAND...]",
		Short: "Print the effective settings (default: of serve) with their sources; secrets masked",
		Long: `Print the settings a command runs with — global flags and the command's
own — each with its value, its environment variable and where the value
came from: flag, env, file (--config or JOBRUNNER_CONFIG) or default.
Precedence: flags > environment > file > defaults. Secrets (the
database password) are masked.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"serve"}
			}
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 || target == cmd.Root() {
				return usagef("config %s: no such command", strings.Join(args, " "))
			}
			// Apply the same layers to the target's flags.
			if err := a.applyConfig(target); err != nil {
				return err
			}
			type row struct {
				Key    string `json:"key"`
				Value  string `json:"value"`
				Env    string `json:"env"`
				Source string `json:"source"`
			}
			var rows []row
			for _, s := range a.settings {
				rows = append(rows, row{Key: s.key, Value: maskSetting(s.key, s.flag.Value.String()), Env: s.env, Source: s.source})
			}
			if asJSON {
				return writeJSON(a.stdout, rows)
			}
			w := 0
			for _, r := range rows {
				w = max(w, len(r.Key))
			}
			for _, r := range rows {
				fmt.Fprintf(a.stdout, "%-*s  %-30s  %s (%s)\n", w, r.Key, r.Value, r.Source, r.Env)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// maskSetting hides secrets in a setting's value.
func maskSetting(key, v string) string {
	if key == "db" && v == "" {
		v = jobs.DefaultDSN
	}
	if key == "db" {
		if d, err := jobs.ParseDSN(v); err == nil {
			return d.String()
		}
	}
	return v
}
