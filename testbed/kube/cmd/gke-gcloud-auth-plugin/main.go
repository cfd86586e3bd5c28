// Command gke-gcloud-auth-plugin is a stand-in for Google's kubectl credential plugin of the
// same name, for gke-mesh's loopback test cluster. Like the real one it prints a
// client.authentication.k8s.io ExecCredential on stdout; its token is the test server's
// static token:
//
//   - GKE_MESH_TESTBED_TOKEN, if set;
//   - else the first line of the file named by GKE_MESH_TESTBED_TOKEN_FILE, if set;
//   - else the fixture's default admin token (testbed/kube_server.py DEFAULT_TOKEN).
//
// GKE_MESH_TESTBED_AUTH_FAIL=<message> makes it fail the way the real plugin does when
// gcloud has no credentials (message on stderr, exit 1), for fault-injection tests.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

const defaultToken = "gke-mesh-testbed-admin-token"

func main() {
	for _, arg := range os.Args[1:] {
		if arg == "--version" || arg == "version" {
			fmt.Println("Kubernetes v1.35.4 (gke-mesh testbed stand-in for gke-gcloud-auth-plugin)")
			return
		}
	}
	if msg := os.Getenv("GKE_MESH_TESTBED_AUTH_FAIL"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
	token := os.Getenv("GKE_MESH_TESTBED_TOKEN")
	if token == "" {
		if file := os.Getenv("GKE_MESH_TESTBED_TOKEN_FILE"); file != "" {
			data, err := os.ReadFile(file)
			if err != nil {
				fmt.Fprintf(os.Stderr, "gke-gcloud-auth-plugin (testbed): %v\n", err)
				os.Exit(1)
			}
			token = strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
		}
	}
	if token == "" {
		token = defaultToken
	}
	// Answer in the apiVersion kubectl asked for (KUBERNETES_EXEC_INFO), v1beta1 by default.
	apiVersion := "client.authentication.k8s.io/v1beta1"
	if info := os.Getenv("KUBERNETES_EXEC_INFO"); info != "" {
		var asked struct {
			APIVersion string `json:"apiVersion"`
		}
		if json.Unmarshal([]byte(info), &asked) == nil && asked.APIVersion != "" {
			apiVersion = asked.APIVersion
		}
	}
	out := map[string]any{
		"kind":       "ExecCredential",
		"apiVersion": apiVersion,
		"spec":       map[string]any{"interactive": false},
		"status": map[string]any{
			"token":               token,
			"expirationTimestamp": time.Now().UTC().Add(time.Hour).Format(time.RFC3339),
		},
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
