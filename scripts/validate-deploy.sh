#!/usr/bin/env bash
# Validates the deployment files offline, with the real parsers of each
# format, and checks that they agree with each other and with the host:
#   - docker-compose.yml: the compose specification's JSON schema
#     (check-jsonschema) and its reference loader (compose-go);
#   - Dockerfile: BuildKit's parser and instruction reader;
#   - deploy/kubernetes: every manifest, and the stream `kustomize build`
#     renders, against the Kubernetes schemas (kubernetes-validate, strict);
#   - deploy/prometheus: promtool check config, check rules, and the alert
#     rules' unit tests (test rules);
#   - tests/deploy/check_deploy.py: ports, mounts, probes, ConfigMaps equal to
#     deploy/, and every metric and label the alerts and the Grafana dashboard
#     use documented in the README's metrics table.
# Installs what is missing, cached under ~/.cache/runnel: a Python venv
# (check-jsonschema, kubernetes-validate), promtool from Debian's prometheus
# package, Go when missing, kustomize and tests/deploy/deploy-check built
# from the Go module proxy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source=scripts/build-env.sh
source scripts/build-env.sh
started=$SECONDS

readonly PYTHON_PACKAGES=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0 pyyaml==6.0.4)
readonly KUBERNETES_VERSIONS=(1.33.0 1.37.0)
readonly KUSTOMIZE_VERSION=v5.8.1
# Go for the tools below: tests/deploy/deploy-check needs 1.26.8 (the
# buildkit module's minimum); the same release sdk/go/build.sh installs.
readonly GO_VERSION=1.26.8
readonly GO_MINIMUM_MINOR=26 GO_MINIMUM_PATCH=8
readonly venv=$RUNNEL_CACHE/deploy-venv
readonly tools=$RUNNEL_CACHE/deploy-tools
mkdir -p "$tools"

say() { printf '%s\n' "validate-deploy: $*"; }

# ---- tools ----

ensure_venv() {
    local stamp=$venv/.packages
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PYTHON_PACKAGES[*]}" ]; then
        return
    fi
    say "installing ${PYTHON_PACKAGES[*]} into $venv (once)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
    echo "${PYTHON_PACKAGES[*]}" >"$stamp"
}

# promtool, from Debian's prometheus package (tests/prometheus/fetch.sh,
# which fetches the server for tests/topology.rs from the same download).
promtool=$tools/promtool
ensure_promtool() {
    [ -x "$promtool" ] && return
    tests/prometheus/fetch.sh >/dev/null
}

go_is_recent() {
    local version
    version=$(go env GOVERSION 2>/dev/null) || return 1
    [[ $version =~ ^go1\.([0-9]+)(\.([0-9]+))?$ ]] || return 1
    local minor=${BASH_REMATCH[1]} patch=${BASH_REMATCH[3]:-0}
    ((minor > GO_MINIMUM_MINOR || (minor == GO_MINIMUM_MINOR && patch >= GO_MINIMUM_PATCH)))
}

# The go command: the one on PATH when recent enough, else the pinned
# release from the Go module proxy, in the folder sdk/go/build.sh uses.
ensure_go() {
    export GOTOOLCHAIN=local
    go_is_recent && return
    local root=$RUNNEL_CACHE/go-$GO_VERSION
    if [ ! -x "$root/go/bin/go" ]; then
        say "installing Go $GO_VERSION from the Go module proxy (once)"
        command -v unzip >/dev/null || apt-get install -y -qq unzip >/dev/null
        local zip=$RUNNEL_CACHE/go-$GO_VERSION.zip
        curl -fsSL -o "$zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip"
        rm -rf "$root.part" && mkdir -p "$root.part"
        (cd "$root.part" && unzip -q "$zip")
        mv "$root.part/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" "$root.part/go"
        chmod +x "$root.part/go/bin/"* "$root.part/go/pkg/tool/"*/*
        rm -rf "$root" && mv "$root.part" "$root"
        rm -f "$zip"
    fi
    export PATH=$root/go/bin:$PATH
}

kustomize=$tools/kustomize-$KUSTOMIZE_VERSION/kustomize
ensure_kustomize() {
    [ -x "$kustomize" ] && return
    say "building kustomize $KUSTOMIZE_VERSION from the Go module proxy (once, a minute or more)"
    GOBIN=$(dirname "$kustomize") GOFLAGS='' nice go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

# Rebuilt when its sources change: the cache holds one binary per content.
deploy_check=""
ensure_deploy_check() {
    local source=tests/deploy/deploy-check hash
    hash=$(cat "$source/go.mod" "$source/go.sum" "$source/main.go" | sha256sum | cut -c1-16)
    deploy_check=$tools/deploy-check-$hash/deploy-check
    [ -x "$deploy_check" ] && return
    say "building tests/deploy/deploy-check (compose-go, BuildKit's Dockerfile parser, Prometheus's PromQL parser; once, a minute or more)"
    rm -rf "$tools"/deploy-check-*  # builds of earlier sources
    mkdir -p "$(dirname "$deploy_check")"
    (cd "$source" && GOFLAGS=-mod=readonly nice go build -trimpath -o "$deploy_check.part" .)
    mv "$deploy_check.part" "$deploy_check"
}

ensure_venv
ensure_promtool
ensure_go
ensure_kustomize
ensure_deploy_check

# ---- the checks ----

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "docker-compose.yml against the compose specification's JSON schema (check-jsonschema --builtin-schema vendor.compose-spec)"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml

say "docker-compose.yml loaded by compose-go, the specification's reference loader"
"$deploy_check" compose "$repo/docker-compose.yml" "$work/compose.json"

say "Dockerfile read by BuildKit's Dockerfile parser"
"$deploy_check" dockerfile Dockerfile

# kubernetes-validate only warns about a kind it has no schema for; here any
# warning is a failure, so that a misspelt kind cannot pass.
validate_manifests() {
    local version=$1 label=$2
    shift 2
    local output
    if ! output=$("$venv/bin/kubernetes-validate" --strict --kubernetes-version "$version" "$@" 2>&1) ||
        grep -qE '^(WARN|ERROR)' <<<"$output"; then
        echo "$output" >&2
        echo "error: $label does not validate against Kubernetes $version" >&2
        exit 1
    fi
    echo "ok -- $label: $(grep -c '^INFO' <<<"$output") resources pass (strict, Kubernetes $version)"
}

manifests=()
for file in deploy/kubernetes/*.yaml; do
    [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
"$kustomize" build deploy/kubernetes >"$work/kustomized.yaml"
for version in "${KUBERNETES_VERSIONS[@]}"; do
    say "deploy/kubernetes against the Kubernetes $version schemas (kubernetes-validate --strict)"
    validate_manifests "$version" "${#manifests[@]} manifests" "${manifests[@]}"
    validate_manifests "$version" "kustomize build deploy/kubernetes" "$work/kustomized.yaml"
done

say "Prometheus configuration and alert rules ($("$promtool" --version 2>&1 | head -1))"
"$promtool" check config deploy/prometheus/prometheus.yml
"$promtool" check rules deploy/prometheus/alerts.yml
"$promtool" test rules deploy/prometheus/alerts.test.yml

say "consistency of the deployment files, and the metrics they use against the README's table"
"$venv/bin/python" tests/deploy/check_deploy.py "$repo" "$work/compose.json" "$deploy_check"

say "every check passed in $((SECONDS - started)) s"
