# shellcheck shell=bash
# Sourced by scripts/kind and scripts/deploy (after they set ROOT): which helm, kubectl and kind they run. The
# variable wins, then (kind) the one on PATH, then what `make install` put in .tools, then the name on PATH.
helm_bin() {
  if [[ -n "${HELM:-}" ]]; then echo "$HELM"; elif [[ -x "$ROOT/.tools/bin/helm" ]]; then echo .tools/bin/helm; else echo helm; fi
}

kubectl_bin() {
  if [[ -n "${KUBECTL:-}" ]]; then echo "$KUBECTL"; elif [[ -x "$ROOT/.tools/cluster/bin/kubectl" ]]; then echo .tools/cluster/bin/kubectl; else echo kubectl; fi
}

kind_bin() {
  if [[ -n "${KIND:-}" ]]; then echo "$KIND"
  elif command -v kind >/dev/null; then echo kind
  elif [[ -x "$ROOT/.tools/bin/kind" ]]; then echo .tools/bin/kind
  else echo kind; fi
}
