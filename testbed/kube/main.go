// Command kube-testbed runs a real Kubernetes control plane for gke-mesh's tests, in one
// process, on loopback only:
//
//   - etcd (go.etcd.io/etcd/server/v3/embed) on two free 127.0.0.1 ports, data in <dir>/etcd;
//   - kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app), HTTPS on 127.0.0.1:<port>
//     with a CA and serving certificate generated at start (<dir>/pki/ca.crt is the CA a
//     kubeconfig trusts), static token authentication and RBAC;
//   - optionally kube-controller-manager (k8s.io/kubernetes/cmd/kube-controller-manager/app)
//     once the API server is ready, so that namespaces finish deleting, the garbage
//     collector removes dependants, Deployments get ReplicaSets and Pods, and every
//     namespace gets its "default" ServiceAccount. There is no scheduler and no kubelet:
//     Pods stay Pending.
//
// Usage:
//
//	kube-testbed --dir DIR --secure-port PORT --token-auth-file FILE [--controllers LIST] [-- extra kube-apiserver flags]
//	kube-testbed crd-versions FILE.yaml   # JSON: each CRD kind's group, plural, served versions, storage version
//
// FILE is kube-apiserver's static token CSV (token,user,uid,"group,..."). The process
// writes DIR/ready once the API server answers /readyz (and the controller manager has
// started, when asked for), and stops everything on SIGTERM or SIGINT.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	logsapi "k8s.io/component-base/logs/api/v1"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "crd-versions" {
		if err := crdVersions(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "kube-testbed crd-versions: %v\n", err)
			os.Exit(1)
		}
		return
	}
	// kube-apiserver and kube-controller-manager each apply the (same, default) logging
	// configuration; the second would otherwise be refused and stop the controller manager.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "kube-testbed: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "state folder (etcd data, certificates); created if missing")
	securePort := flag.Int("secure-port", 0, "kube-apiserver HTTPS port on 127.0.0.1 (required)")
	tokenFile := flag.String("token-auth-file", "", "kube-apiserver static token CSV (required)")
	controllers := flag.String("controllers", "", "run kube-controller-manager with this --controllers value (e.g. '*'); empty: no controller manager")
	serviceRange := flag.String("service-cluster-ip-range", "10.96.0.0/16", "kube-apiserver --service-cluster-ip-range")
	flag.Parse()
	extra := flag.Args()
	if *dir == "" || *securePort == 0 || *tokenFile == "" {
		return fmt.Errorf("--dir, --secure-port and --token-auth-file are required")
	}
	start := time.Now()
	pki := filepath.Join(*dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(*dir, "ready"))

	// The API server's first service IP goes into the serving certificate, as on a real cluster.
	_, svcNet, err := net.ParseCIDR(*serviceRange)
	if err != nil {
		return fmt.Errorf("--service-cluster-ip-range: %w", err)
	}
	firstSvcIP := make(net.IP, len(svcNet.IP))
	copy(firstSvcIP, svcNet.IP)
	firstSvcIP[len(firstSvcIP)-1]++
	if err := writePKI(pki, firstSvcIP); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}

	// The controller manager authenticates with a token of its own, added to the operator's file.
	tokens, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	kcmToken := randomToken()
	allTokens := filepath.Join(*dir, "tokens.csv")
	content := strings.TrimRight(string(tokens), "\n") + "\n" +
		fmt.Sprintf("%s,system:kube-controller-manager,kcm-testbed,\"system:masters\"\n", kcmToken)
	if err := os.WriteFile(allTokens, []byte(content), 0o600); err != nil {
		return err
	}

	etcdServer, etcdURL, err := startEtcd(filepath.Join(*dir, "etcd"))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcdServer.Close()
	fmt.Fprintf(os.Stderr, "kube-testbed: etcd ready at %s after %.2fs\n", etcdURL, time.Since(start).Seconds())

	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(*securePort),
		"--etcd-servers=" + etcdURL,
		"--cert-dir=" + pki,
		"--tls-cert-file=" + filepath.Join(pki, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pki, "ca.crt"),
		"--token-auth-file=" + allTokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=" + *serviceRange,
		// The "kubernetes" Endpoints may not hold a loopback address; nothing routes to it anyway.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
	}
	if *controllers == "" {
		// Without the controller manager no namespace gets its "default" ServiceAccount, and
		// the ServiceAccount admission plugin would refuse every Pod.
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	args = append(args, extra...)

	// kube-apiserver handles SIGTERM/SIGINT itself (graceful shutdown; a second signal exits
	// at once). Its drain waits for long-running requests such as the controller manager's
	// watches, up to a minute: a test server does not need that, so 1s after the first
	// signal etcd is closed and the process exits whatever the API server is doing.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		time.Sleep(time.Second)
		fmt.Fprintf(os.Stderr, "kube-testbed: exiting without waiting for the API server to drain\n")
		closed := make(chan struct{})
		go func() { etcdServer.Close(); close(closed) }()
		select { // etcd's Close waits for its clients; the data folder is thrown away anyway
		case <-closed:
		case <-time.After(time.Second):
		}
		os.Exit(0)
	}()
	apiserver := apiserverapp.NewAPIServerCommand()
	apiserver.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- apiserver.Execute() }()

	base := "https://127.0.0.1:" + strconv.Itoa(*securePort)
	readyCtx, cancelReady := context.WithCancel(context.Background())
	defer cancelReady()
	readyErr := make(chan error, 1)
	go func() {
		if err := waitReady(readyCtx, base, filepath.Join(pki, "ca.crt")); err != nil {
			readyErr <- err
			return
		}
		fmt.Fprintf(os.Stderr, "kube-testbed: kube-apiserver ready at %s after %.2fs\n", base, time.Since(start).Seconds())
		if *controllers != "" {
			if err := startControllerManager(*dir, pki, base, kcmToken, *controllers); err != nil {
				readyErr <- err
				return
			}
			fmt.Fprintf(os.Stderr, "kube-testbed: kube-controller-manager started (--controllers=%s)\n", *controllers)
		}
		readyErr <- os.WriteFile(filepath.Join(*dir, "ready"), []byte(base+"\n"), 0o600)
	}()

	for {
		select {
		case err := <-done:
			fmt.Fprintf(os.Stderr, "kube-testbed: kube-apiserver stopped: %v\n", err)
			return err
		case err := <-readyErr:
			if err != nil {
				return err
			}
			readyErr = nil
		}
	}
}

func startEtcd(dataDir string) (*embed.Etcd, string, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "testbed"
	cfg.Dir = dataDir
	clientURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(clientPort)}
	peerURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peerPort)}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true // a test server: speed over durability
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("not ready after 60s")
	}
	return e, clientURL.String(), nil
}

func startControllerManager(dir, pki, base, token, controllers string) error {
	kubeconfig := filepath.Join(dir, "controller-manager.kubeconfig")
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kcm
  user:
    token: %s
contexts:
- name: testbed
  context: {cluster: testbed, user: kcm}
current-context: testbed
`, base, filepath.Join(pki, "ca.crt"), token)
	if err := os.WriteFile(kubeconfig, []byte(doc), 0o600); err != nil {
		return err
	}
	kcm := kcmapp.NewControllerManagerCommand()
	kcm.SetArgs([]string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0", // no serving endpoint of its own
		"--controllers=" + controllers,
		"--service-account-private-key-file=" + filepath.Join(pki, "sa.key"),
		"--root-ca-file=" + filepath.Join(pki, "ca.crt"),
		"--use-service-account-credentials=false",
		"--cluster-name=testbed",
		// Faster convergence than the production defaults, for tests.
		"--namespace-sync-period=1m",
		"--concurrent-gc-syncs=5",
	})
	go func() {
		if err := kcm.Execute(); err != nil {
			fmt.Fprintf(os.Stderr, "kube-testbed: kube-controller-manager stopped: %v\n", err)
			// A control plane without the controllers the caller asked for is not the one
			// it wanted: stop the whole process.
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}
	}()
	return nil
}

func waitReady(ctx context.Context, base, caFile string) error {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready after 120s")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

// writePKI writes a CA (ca.crt), a serving certificate for the API server (apiserver.crt,
// .key) valid for 127.0.0.1, localhost and the in-cluster names, and the service-account
// signing key pair (sa.key, sa.pub). All are new at every start.
func writePKI(pki string, serviceIP net.IP) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gke-mesh-testbed-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	serveKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serveTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), serviceIP},
	}
	serveDER, err := x509.CreateCertificate(rand.Reader, serveTemplate, caCert, &serveKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	serveKeyDER, err := x509.MarshalECPrivateKey(serveKey)
	if err != nil {
		return err
	}
	files := map[string]*pem.Block{
		"ca.crt":        {Type: "CERTIFICATE", Bytes: caDER},
		"apiserver.crt": {Type: "CERTIFICATE", Bytes: serveDER},
		"apiserver.key": {Type: "EC PRIVATE KEY", Bytes: serveKeyDER},
		"sa.key":        {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)},
		"sa.pub":        {Type: "PUBLIC KEY", Bytes: saPub},
	}
	for name, block := range files {
		if err := os.WriteFile(filepath.Join(pki, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// crdVersions prints, for each CustomResourceDefinition in a multi-document YAML file, its
// group, plural, served versions and storage version, as JSON keyed by kind.
func crdVersions(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	type version struct {
		Name    string `json:"name"`
		Served  bool   `json:"served"`
		Storage bool   `json:"storage"`
	}
	type crd struct {
		Kind string `json:"kind"`
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind   string `json:"kind"`
				Plural string `json:"plural"`
			} `json:"names"`
			Versions []version `json:"versions"`
		} `json:"spec"`
	}
	type summary struct {
		Group   string   `json:"group"`
		Plural  string   `json:"plural"`
		Served  []string `json:"served"`
		Storage string   `json:"storage"`
	}
	out := map[string]summary{}
	decoder := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var doc crd
		if err := decoder.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if doc.Kind != "CustomResourceDefinition" {
			continue
		}
		s := summary{Group: doc.Spec.Group, Plural: doc.Spec.Names.Plural, Served: []string{}}
		for _, v := range doc.Spec.Versions {
			if v.Served {
				s.Served = append(s.Served, v.Name)
			}
			if v.Storage {
				s.Storage = v.Name
			}
		}
		out[doc.Spec.Names.Kind] = s
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(out)
}

func init() {
	// A second SIGTERM/SIGINT is handled by the API server's signal context (it exits at
	// once); nothing else to set up here. Ignore SIGPIPE on stderr closed by a parent.
	signal.Ignore(syscall.SIGPIPE)
}
