// pulumi-resource-command (gke-mesh test stand-in): our own small provider for the token
// command:local:Command, reporting package "command" version 1.2.1, built on
// github.com/pulumi/pulumi-go-provider v1.3.0 (the framework pulumi-command 1.2.1 is built on),
// so that diff, preview, secrets and state handling are the framework's, not ours.
//
// It is NOT pulumi-command: it implements only what the gke-mesh program uses, written from
// the behaviour recorded in testbed/ENGINE_RULES.md (measured with the real provider). Each
// rule below names the rule letter there and the pulumi-command 1.2.1 source it mirrors
// (provider/pkg/provider/local/commandController.go, provider/pkg/provider/local/commandOutputs.go,
// provider/pkg/provider/common/inputs.go). No pulumi-command source is copied.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

const (
	packageName = "command"
	version     = "1.2.1" // the version the Python SDK pulumi_command==1.2.1 asks for

	// commandOutputs.go, run: the previous outputs reach an update's / delete's command as
	// these variables (ENGINE_RULES a, b, c, g).
	envStdout = "PULUMI_COMMAND_STDOUT"
	envStderr = "PULUMI_COMMAND_STDERR"
)

// Command is the resource command:local:Command.
type Command struct{}

// CommandArgs are the inputs the Python SDK pulumi_command 1.2.1 sends
// (pulumi_command/local/command.py, Command._internal_init). Every one is optional.
type CommandArgs struct {
	Create *string `pulumi:"create,optional"`
	Update *string `pulumi:"update,optional"`
	Delete *string `pulumi:"delete,optional"`
	// common/inputs.go, ResourceInputs.Triggers: tagged replaceOnChanges, so that
	// pulumi-go-provider's default Diff (infer/resource.go, derivedResourceController.Diff)
	// turns a change of it into a replace; every other input change is an update
	// (ENGINE_RULES a, c).
	Triggers               *[]any            `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Dir                    *string           `pulumi:"dir,optional"`
	Interpreter            *[]string         `pulumi:"interpreter,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Logging                *string           `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
	// Accepted so that decoding never fails on them; the stand-in does not collect files.
	AssetPaths   *[]string `pulumi:"assetPaths,optional"`
	ArchivePaths *[]string `pulumi:"archivePaths,optional"`
}

// CommandState is what is stored: the inputs plus the last successful run's output
// (commandOutputs.go: the outputs embed the inputs and add stdout/stderr).
type CommandState struct {
	CommandArgs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

// Annotate gives the resource the token command:local:Command (the real one gets it from
// its Go package "local"; ours lives in package main).
func (c *Command) Annotate(a infer.Annotator) {
	a.SetToken("local", "Command")
	a.Describe(&c, "gke-mesh test stand-in for pulumi-command's local Command (create/update/delete only).")
}

// Create runs `create` (commandController.go, Command.Create).
// ENGINE_RULES "Also seen": preview runs nothing (return before running when DryRun).
// ENGINE_RULES d: a failing create is a plain error, so pulumi-go-provider stores nothing
// (infer/resource.go, derivedResourceController.Create: no partial state).
func (*Command) Create(ctx context.Context, req infer.CreateRequest[CommandArgs]) (infer.CreateResponse[CommandState], error) {
	state := CommandState{CommandArgs: req.Inputs}
	// The id is the resource name plus 8 random hex digits, like the real one's
	// (resource.NewUniqueHex(name, 8, 0) in commandController.go, Command.Create).
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil {
		return infer.CreateResponse[CommandState]{}, err
	}
	if req.DryRun {
		return infer.CreateResponse[CommandState]{ID: id, Output: state}, nil
	}
	if req.Inputs.Create != nil {
		// A new resource has no previous outputs: nothing extra in the environment.
		if err := run(ctx, *req.Inputs.Create, &state); err != nil {
			return infer.CreateResponse[CommandState]{}, err
		}
	}
	return infer.CreateResponse[CommandState]{ID: id, Output: state}, nil
}

// Update runs `update`, or `create` when there is no `update` (commandController.go,
// Command.Update; ENGINE_RULES a, b). The state it works on is the NEW inputs with the OLD
// outputs, so the command sees the new `environment` and the previous stdout/stderr.
// ENGINE_RULES e: a failure is a plain error and the engine keeps the old state
// (infer/resource.go, derivedResourceController.Update: no partial state).
func (*Command) Update(ctx context.Context, req infer.UpdateRequest[CommandArgs, CommandState]) (infer.UpdateResponse[CommandState], error) {
	state := CommandState{CommandArgs: req.Inputs, Stdout: req.State.Stdout, Stderr: req.State.Stderr}
	if req.DryRun {
		return infer.UpdateResponse[CommandState]{Output: state}, nil
	}
	command := req.Inputs.Update
	if command == nil {
		command = req.Inputs.Create
	}
	if command != nil {
		if err := run(ctx, *command, &state); err != nil {
			return infer.UpdateResponse[CommandState]{}, err
		}
	}
	return infer.UpdateResponse[CommandState]{Output: state}, nil
}

// Delete runs the STORED `delete`, with the stored environment and outputs
// (commandController.go, Command.Delete reads req.State; ENGINE_RULES c, g). No `delete`:
// nothing runs. A failure keeps the resource in state (engine: the delete step failed).
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandState]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	state := req.State
	return infer.DeleteResponse{}, run(ctx, *req.State.Delete, &state)
}

// run executes one command (commandOutputs.go, run):
//   - interpreter: `interpreter` or /bin/sh -c, the command text as its last argument;
//   - environment: the provider process's environment (which is the pulumi CLI's:
//     ENGINE_RULES g, "Also seen"), then `environment`, then PULUMI_COMMAND_STDOUT /
//     PULUMI_COMMAND_STDERR holding the state's current outputs when they are non-empty
//     and `addPreviousOutputInEnv` is not false (ENGINE_RULES a, b, g);
//   - working directory: `dir`, else the provider's own working directory, which the engine
//     sets to the project directory (ENGINE_RULES h);
//   - `stdin` on standard input when set;
//   - success: stdout and stderr, each without one trailing newline, overwrite the state's
//     outputs, even when empty (ENGINE_RULES b); a non-zero exit is an error carrying the
//     combined output, and the state's outputs are left as they were (ENGINE_RULES e).
func run(ctx context.Context, command string, state *CommandState) error {
	args := []string{"/bin/sh", "-c"}
	if state.Interpreter != nil && len(*state.Interpreter) > 0 {
		args = append([]string{}, *state.Interpreter...)
	}
	args = append(args, command)

	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	env := os.Environ()
	keys := make([]string, 0, len(state.Environment))
	for k := range state.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+state.Environment[k])
	}
	if state.AddPreviousOutputInEnv == nil || *state.AddPreviousOutputInEnv {
		if state.Stdout != "" {
			env = append(env, envStdout+"="+state.Stdout)
		}
		if state.Stderr != "" {
			env = append(env, envStderr+"="+state.Stderr)
		}
	}
	cmd.Env = env // exec keeps the last value of a repeated key, so later entries win
	if state.Dir != nil {
		cmd.Dir = *state.Dir
	}
	if state.Stdin != nil {
		cmd.Stdin = strings.NewReader(*state.Stdin)
	}
	var stdout, stderr, combined bytes.Buffer
	cmd.Stdout = &teeWriter{&stdout, &combined}
	cmd.Stderr = &teeWriter{&stderr, &combined}

	err := cmd.Run()
	logOutput(ctx, state.Logging, stdout.String(), stderr.String())
	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, command, combined.String())
	}
	state.Stdout = strings.TrimSuffix(stdout.String(), "\n")
	state.Stderr = strings.TrimSuffix(stderr.String(), "\n")
	return nil
}

// logOutput shows the streams `logging` selects as ephemeral status lines (the real
// provider streams them while the command runs; default: both; "none": neither). A stream
// left out (e.g. stdout of a step with logging=stderr) never reaches the engine's log.
func logOutput(ctx context.Context, logging *string, stdout, stderr string) {
	mode := "stdoutAndStderr"
	if logging != nil {
		mode = *logging
	}
	l := p.GetLogger(ctx)
	show := func(text string) {
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if line != "" {
				l.InfoStatus(line)
			}
		}
	}
	if mode == "stdout" || mode == "stdoutAndStderr" {
		show(stdout)
	}
	if mode == "stderr" || mode == "stdoutAndStderr" {
		show(stderr)
	}
}

type teeWriter struct{ a, b *bytes.Buffer }

func (t *teeWriter) Write(b []byte) (int, error) {
	t.a.Write(b)
	return t.b.Write(b)
}

func main() {
	provider, err := infer.NewProviderBuilder().
		WithResources(infer.Resource(&Command{})).
		WithDisplayName("command (gke-mesh stand-in)").
		Build()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		os.Exit(1)
	}
	if err := provider.Run(context.Background(), packageName, version); err != nil {
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		os.Exit(1)
	}
}
