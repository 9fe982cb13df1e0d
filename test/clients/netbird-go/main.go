// Command netbird-rest-flow drives a NetBird management API with NetBird's own Go REST client
// (github.com/netbirdio/netbird/shared/management/client/rest) through the provisioning flow pveflow runs:
// who am I, the account, groups, a one-off setup key (and the key NetBird refuses), users, a machine joining
// with the key, a policy, the peers it may reach, and cleanup. pveflow's tests run it against the simulator.
//
// Configuration from the environment: NETBIRD_API_URL, NETBIRD_TOKEN (a PAT), NETBIRD_CA_FILE (optional, the CA
// the server's certificate chains to), NETBIRD_SIM_CONTROL_URL and NETBIRD_SIM_CONTROL_TOKEN (the simulator's
// control endpoint, through which a machine joins). It prints one line per step and exits 1 at the first step
// whose answer is not what NetBird would give.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/netbirdio/netbird/shared/management/client/rest"
	"github.com/netbirdio/netbird/shared/management/http/api"
)

type flow struct {
	ctx     context.Context
	cancel  context.CancelFunc
	client  *rest.Client
	http    *http.Client
	control string
	ctlTok  string
	suffix  string
}

func main() {
	f, err := newFlow()
	if err != nil {
		fail("setup", err)
	}
	defer f.cancel()
	f.run()
	fmt.Println("FLOW_OK")
}

func newFlow() (*flow, error) {
	url, token := os.Getenv("NETBIRD_API_URL"), os.Getenv("NETBIRD_TOKEN")
	if url == "" || token == "" {
		return nil, errors.New("NETBIRD_API_URL and NETBIRD_TOKEN are required")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile := os.Getenv("NETBIRD_CA_FILE"); caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	httpClient := &http.Client{Transport: transport, Timeout: 20 * time.Second}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	return &flow{
		ctx:     ctx,
		cancel:  cancel,
		client:  rest.NewWithOptions(rest.WithManagementURL(url), rest.WithPAT(token), rest.WithHttpClient(httpClient), rest.WithUserAgent("pveflow-netbird-rest-flow")),
		http:    httpClient,
		control: os.Getenv("NETBIRD_SIM_CONTROL_URL"),
		ctlTok:  os.Getenv("NETBIRD_SIM_CONTROL_TOKEN"),
		suffix:  hex.EncodeToString(suffix),
	}, nil
}

func (f *flow) run() {
	me := must(f.client.Users.Current(f.ctx))("users/current")
	check("users/current", me.IsCurrent != nil && *me.IsCurrent, "is_current is not true")
	check("users/current", me.Role == "owner" || me.Role == "admin", "the token's user is %q, not owner/admin", me.Role)
	check("users/current", me.Permissions != nil && me.Permissions.Modules["setup_keys"]["create"], "permissions do not allow creating setup keys")
	ok("users/current", me.Email)

	accounts := must(f.client.Accounts.List(f.ctx))("accounts")
	check("accounts", len(accounts) == 1 && accounts[0].Id != "", "expected one account, got %d", len(accounts))
	ok("accounts", accounts[0].Id)

	routes := must(f.client.Routes.List(f.ctx))("routes")
	ok("routes", fmt.Sprint(len(routes)))

	devices := must(f.client.Groups.Create(f.ctx, api.GroupRequest{Name: "pveflow-dev-" + f.suffix}))("groups")
	consultants := must(f.client.Groups.Create(f.ctx, api.GroupRequest{Name: "pveflow-cons-" + f.suffix}))("groups")
	ok("groups", devices.Id+","+consultants.Id)

	_, err := f.client.SetupKeys.Create(f.ctx, api.CreateSetupKeyRequest{Name: "refused-" + f.suffix, Type: "one-off", ExpiresIn: 86400, AutoGroups: []string{devices.Id}, UsageLimit: 5})
	var apiErr *rest.APIError
	check("setup-keys refused", errors.As(err, &apiErr) && apiErr.StatusCode == 422 && strings.Contains(apiErr.Message, "usage_limit 5"),
		"a one-off key with usage_limit 5 must be refused with 422, got %v", err)
	ok("setup-keys refused", apiErr.Message)

	key := must(f.client.SetupKeys.Create(f.ctx, api.CreateSetupKeyRequest{Name: "vm-" + f.suffix, Type: "one-off", ExpiresIn: 86400, AutoGroups: []string{devices.Id}, UsageLimit: 1}))("setup-keys")
	check("setup-keys", key.Key != "" && key.Valid && key.State == "valid" && key.UsageLimit == 1, "unexpected key %+v", *key)
	ok("setup-keys", key.Id)

	bot := must(f.client.Users.Create(f.ctx, api.UserCreateRequest{Name: ptr("provisioner-" + f.suffix), Role: "user", AutoGroups: []string{}, IsServiceUser: true}))("users service")
	check("users service", bot.IsServiceUser != nil && *bot.IsServiceUser && bot.Status == api.UserStatusActive, "unexpected service user %+v", *bot)
	email := "consultant-" + f.suffix + "@consultancy.example"
	consultant := must(f.client.Users.Create(f.ctx, api.UserCreateRequest{Email: &email, Name: ptr("Consultant " + f.suffix), Role: "user", AutoGroups: []string{consultants.Id}}))("users invite")
	// Invited through an external IdP; active at once (with a generated password) through NetBird's built-in one.
	check("users invite", (consultant.Status == api.UserStatusInvited || consultant.Status == api.UserStatusActive) && slices.Contains(consultant.AutoGroups, consultants.Id), "unexpected invited user %+v", *consultant)
	ok("users", bot.Id+","+consultant.Id)

	vm := f.join("join vm", map[string]string{"setup_key": key.Key, "hostname": "vm-" + f.suffix})
	laptop := f.join("join laptop", map[string]string{"email": email, "hostname": "laptop-" + f.suffix})

	used := must(f.client.SetupKeys.Get(f.ctx, key.Id))("setup-keys used")
	check("setup-keys used", used.UsedTimes == 1 && used.State == "overused" && !used.Valid, "after one use: %+v", *used)
	_, err = f.client.Peers.Get(f.ctx, vm)
	check("peers", err == nil, "the joined VM is not a peer: %v", err)
	listed := must(f.client.Peers.List(f.ctx, rest.PeerNameFilter("vm-"+f.suffix)))("peers")
	check("peers", len(listed) == 1 && slices.ContainsFunc(listed[0].Groups, func(g api.GroupMinimum) bool { return g.Id == devices.Id }),
		"the VM's peer is not in its device group: %+v", listed)
	ok("peers", vm+","+laptop)

	rule := api.PolicyRuleUpdate{Name: "consultants to vm", Enabled: true, Action: api.PolicyRuleUpdateActionAccept, Bidirectional: false,
		Protocol: api.PolicyRuleUpdateProtocolTcp, Ports: &[]string{"22"}, Sources: &[]string{consultants.Id}, Destinations: &[]string{devices.Id}}
	policy := must(f.client.Policies.Create(f.ctx, api.PolicyUpdate{Name: "pveflow-" + f.suffix, Enabled: true, Rules: []api.PolicyRuleUpdate{rule}}))("policies")
	check("policies", policy.Id != nil && *policy.Id != "", "policy has no id")
	ok("policies", *policy.Id)

	fromLaptop := must(f.client.Peers.ListAccessiblePeers(f.ctx, laptop))("accessible-peers")
	check("accessible-peers", slices.ContainsFunc(fromLaptop, func(p api.Peer) bool { return p.Id == vm }), "the laptop cannot reach the VM: %+v", fromLaptop)
	fromVM := must(f.client.Peers.ListAccessiblePeers(f.ctx, vm))("accessible-peers")
	check("accessible-peers", slices.ContainsFunc(fromVM, func(p api.Peer) bool { return p.Id == laptop }), "the VM's network map lacks the laptop: %+v", fromVM)
	ok("accessible-peers", fmt.Sprintf("%d,%d", len(fromLaptop), len(fromVM)))

	step("cleanup", f.client.Policies.Delete(f.ctx, *policy.Id))
	step("cleanup", f.client.Peers.Delete(f.ctx, vm))
	step("cleanup", f.client.Users.Delete(f.ctx, consultant.Id))
	step("cleanup", f.client.Users.Delete(f.ctx, bot.Id))
	step("cleanup", f.client.SetupKeys.Delete(f.ctx, key.Id))
	step("cleanup", f.client.Groups.Delete(f.ctx, devices.Id))
	step("cleanup", f.client.Groups.Delete(f.ctx, consultants.Id))
	peers := must(f.client.Peers.List(f.ctx))("cleanup")
	check("cleanup", !slices.ContainsFunc(peers, func(p api.Peer) bool { return p.Id == vm || p.Id == laptop }), "peers left behind: %+v", peers)
	_, err = f.client.Groups.Get(f.ctx, devices.Id)
	check("cleanup", rest.IsNotFound(err), "the device group is still there: %v", err)
	ok("cleanup", "")
}

// join makes a machine join the way a booting VM or a user's laptop does, through the simulator's control endpoint.
func (f *flow) join(name string, body map[string]string) string {
	if f.control == "" {
		fail(name, errors.New("NETBIRD_SIM_CONTROL_URL is required for a machine to join"))
	}
	payload, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(f.ctx, http.MethodPost, strings.TrimRight(f.control, "/")+"/peers", bytes.NewReader(payload))
	if err != nil {
		fail(name, err)
	}
	req.Header.Set("Authorization", "Bearer "+f.ctlTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.http.Do(req)
	if err != nil {
		fail(name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Data *struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.Data == nil {
		fail(name, fmt.Errorf("join answered %d: %s", resp.StatusCode, raw))
	}
	ok(name, out.Data.ID)
	return out.Data.ID
}

func must[T any](v T, err error) func(string) T {
	return func(name string) T {
		if err != nil {
			fail(name, err)
		}
		return v
	}
}

func step(name string, err error) {
	if err != nil {
		fail(name, err)
	}
}

func check(name string, cond bool, format string, args ...any) {
	if !cond {
		fail(name, fmt.Errorf(format, args...))
	}
}

func ok(name, detail string) { fmt.Printf("ok %s %s\n", name, detail) }

func fail(name string, err error) {
	var apiErr *rest.APIError
	if errors.As(err, &apiErr) {
		err = fmt.Errorf("HTTP %d: %s", apiErr.StatusCode, apiErr.Message)
	}
	fmt.Printf("FAIL %s: %v\n", name, err)
	os.Exit(1)
}

func ptr[T any](v T) *T { return &v }
