#!/usr/bin/env bash
# Run the whole webpaas-health stack on this machine, bound to 127.0.0.1:
# the exporter watching this machine's disks, Prometheus with the bundled
# rules, Alertmanager routed to the bridge, the bridge with its SQLite store,
# and a local webhook receiver that verifies and prints every notification.
#
#   deploy/local/stack.sh up       set up (idempotent) and start what is not running
#   deploy/local/stack.sh status   show each part, its pid and where it listens
#   deploy/local/stack.sh demo     fill a scratch filesystem to show every notification,
#                                  on intervals shortened for the demo only
#   deploy/local/stack.sh down     stop every part by its pid, unmount the scratch fs
#
# Run `up` as root on a fresh machine, because it installs Debian packages;
# `demo` always needs root, because it mounts a tmpfs. Environment:
#   WEBPAAS_STACK_DIR                state directory (credentials, configs,
#                                    data, logs, pid files)
#   WEBPAAS_STACK_EXPORTER_PORT      default 9846
#   WEBPAAS_STACK_BRIDGE_PORT        default 9847
#   WEBPAAS_STACK_RECEIVER_PORT      default 9848
#   WEBPAAS_STACK_PROMETHEUS_PORT    default 19090
#   WEBPAAS_STACK_ALERTMANAGER_PORT  default 19093
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY="$REPO/.venv/bin/python"

if [ "$(id -u)" -eq 0 ]; then
    default_state=/var/lib/webpaas-health-stack
else
    default_state="${XDG_STATE_HOME:-$HOME/.local/state}/webpaas-health"
fi
STATE=${WEBPAAS_STACK_DIR:-$default_state}
SECRETS="$STATE/secrets"
RUN="$STATE/run"
LOGS="$STATE/log"
DEMO_DISK="$STATE/demo-disk"
# The scratch filesystem of the demo: small, so that filling it is quick.
DEMO_DISK_SIZE=64m

EXPORTER_PORT=${WEBPAAS_STACK_EXPORTER_PORT:-9846}
BRIDGE_PORT=${WEBPAAS_STACK_BRIDGE_PORT:-9847}
RECEIVER_PORT=${WEBPAAS_STACK_RECEIVER_PORT:-9848}
PROMETHEUS_PORT=${WEBPAAS_STACK_PROMETHEUS_PORT:-19090}
ALERTMANAGER_PORT=${WEBPAAS_STACK_ALERTMANAGER_PORT:-19093}

# Start order; `down` stops them in reverse.
PARTS=(receiver bridge alertmanager prometheus exporter)

# Credentials, configurations and data are readable by this user only.
umask 077

log() { printf '%s\n' "$*"; }
fail() {
    printf 'stack: %s\n' "$*" >&2
    exit 1
}

port_of() {
    case $1 in
    exporter) echo "$EXPORTER_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
    alertmanager) echo "$ALERTMANAGER_PORT" ;;
    bridge) echo "$BRIDGE_PORT" ;;
    receiver) echo "$RECEIVER_PORT" ;;
    esac
}

# URL that answers 2xx once the part is ready.
ready_url_of() {
    local base="http://127.0.0.1:$(port_of "$1")"
    case $1 in
    exporter) echo "$base/metrics" ;;
    prometheus | alertmanager) echo "$base/-/ready" ;;
    bridge) echo "$base/readyz" ;;
    receiver) echo "$base/healthz" ;;
    esac
}

# The pid recorded for a part, if that process is still the part we started:
# its command line must name the state directory, so a reused pid never
# counts.
running_pid() {
    local pidfile="$RUN/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    is_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE" || return 1
    echo "$pid"
}

# True while the process runs. A zombie counts as stopped: it has exited and
# only waits for init to reap it.
is_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

http_ok() {
    "$PY" - "$1" <<'EOF' 2>/dev/null
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    sys.exit(0 if response.status < 300 else 1)
EOF
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

generate_secret() {
    local path=$1
    [ -s "$path" ] && return 0
    # 32 random bytes as unpadded base64url: the length jwcrypto requires
    # of an HS256 key, and a valid bearer token.
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$path.new"
    chmod 600 "$path.new"
    mv "$path.new" "$path"
}

prepare_state() {
    mkdir -p "$STATE" "$SECRETS" "$RUN" "$LOGS" "$STATE/prometheus" "$STATE/alertmanager"
    chmod 700 "$STATE" "$SECRETS"
    generate_secret "$SECRETS/bridge-token"
    generate_secret "$SECRETS/admin-token"
    generate_secret "$SECRETS/webhook-shared-key"
}

# Write every configuration for the given mode; print the parts whose
# configuration changed.
render_configs() {
    local mode=$1
    "$PY" "$REPO/deploy/local/stack_config.py" \
        --state-dir "$STATE" --mode "$mode" \
        --exporter-port "$EXPORTER_PORT" --bridge-port "$BRIDGE_PORT" \
        --receiver-port "$RECEIVER_PORT" --prometheus-port "$PROMETHEUS_PORT" \
        --alertmanager-port "$ALERTMANAGER_PORT" --demo-disk "$DEMO_DISK"
}

# Start one part in its own session, with its output in its log file.
launch() {
    local part=$1
    local listen="127.0.0.1:$(port_of "$part")"
    case $part in
    exporter)
        setsid "$REPO/.venv/bin/webpaas-disk-exporter" \
            --config "$STATE/exporter.yml" --listen "$listen" \
            >>"$LOGS/exporter.log" 2>&1 </dev/null &
        ;;
    prometheus)
        setsid /usr/bin/prometheus \
            --config.file="$STATE/prometheus.yml" \
            --storage.tsdb.path="$STATE/prometheus" \
            --web.listen-address="$listen" \
            --web.external-url="http://$listen/" \
            >>"$LOGS/prometheus.log" 2>&1 </dev/null &
        ;;
    alertmanager)
        # An empty cluster address turns off the gossip listener, which
        # would otherwise bind to every interface on port 9094.
        setsid /usr/bin/prometheus-alertmanager \
            --config.file="$STATE/alertmanager.yml" \
            --storage.path="$STATE/alertmanager" \
            --web.listen-address="$listen" \
            --web.external-url="http://$listen/" \
            --cluster.listen-address= \
            >>"$LOGS/alertmanager.log" 2>&1 </dev/null &
        ;;
    bridge)
        # The bridge reads its tokens and the webhook's shared key from the
        # files that bridge.yml names, so no secret is on a command line.
        setsid "$REPO/.venv/bin/webpaas-bridge" \
            --config "$STATE/bridge.yml" --listen "$listen" \
            --db "$STATE/bridge.db" \
            >>"$LOGS/bridge.log" 2>&1 </dev/null &
        ;;
    receiver)
        setsid "$PY" "$REPO/deploy/local/webhook_receiver.py" \
            --listen "$listen" --shared-key-file "$SECRETS/webhook-shared-key" \
            >>"$LOGS/receiver.log" 2>&1 </dev/null &
        ;;
    esac
    echo $! >"$RUN/$part.pid"
}

wait_ready() {
    local part=$1 pid=$2 url
    url=$(ready_url_of "$part")
    for _ in $(seq 1 120); do
        if ! is_alive "$pid"; then
            tail -n 20 "$LOGS/$part.log" >&2 || true
            fail "$part exited during start; its log is $LOGS/$part.log"
        fi
        http_ok "$url" && return 0
        sleep 0.5
    done
    fail "$part did not answer $url within 60 s; its log is $LOGS/$part.log"
}

start_part() {
    local part=$1 pid
    if pid=$(running_pid "$part"); then
        log "  $part: running (pid $pid)"
        return 0
    fi
    if port_in_use "$(port_of "$part")"; then
        fail "port $(port_of "$part") for $part is in use by another program; set WEBPAAS_STACK_${part^^}_PORT"
    fi
    launch "$part"
    pid=$(<"$RUN/$part.pid")
    wait_ready "$part" "$pid"
    log "  $part: started (pid $pid)"
}

stop_part() {
    local part=$1 pid
    if ! pid=$(running_pid "$part"); then
        rm -f "$RUN/$part.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        is_alive "$pid" || break
        sleep 0.1
    done
    if is_alive "$pid"; then
        log "  $part: still running 10 s after SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$part.pid"
    log "  $part: stopped (pid $pid)"
}

# Apply changed configurations to running parts: Prometheus and Alertmanager
# reload on SIGHUP; the exporter and the bridge read theirs at start.
apply_changes() {
    local part pid
    for part in "$@"; do
        pid=$(running_pid "$part") || continue
        case $part in
        prometheus | alertmanager)
            kill -HUP "$pid"
            log "  $part: configuration reloaded (pid $pid)"
            ;;
        exporter | bridge)
            stop_part "$part"
            ;;
        esac
    done
}

start_all() {
    local mode=$1 changed
    prepare_state
    changed=$(render_configs "$mode")
    # shellcheck disable=SC2086 # one part name per line
    apply_changes $changed
    for part in "${PARTS[@]}"; do
        start_part "$part"
    done
}

# This script's command line as the user would retype it: an absolute path,
# preceded by the WEBPAAS_STACK_* settings in effect, since `sudo` drops them.
stack_command() {
    local name settings=()
    for name in "${!WEBPAAS_STACK_@}"; do
        settings+=("$name=$(printf '%q' "${!name}")")
    done
    if [ "$(id -u)" -ne 0 ]; then
        printf 'sudo '
        ((${#settings[@]})) && printf 'env '
    fi
    ((${#settings[@]})) && printf '%s ' "${settings[@]}"
    printf '%s' "$REPO/deploy/local/stack.sh"
}

print_endpoints() {
    local stack
    stack=$(stack_command)
    cat <<EOF

webpaas-health is running on this machine (state in $STATE):
  exporter       http://127.0.0.1:$EXPORTER_PORT/metrics
  Prometheus     http://127.0.0.1:$PROMETHEUS_PORT/alerts
  Alertmanager   http://127.0.0.1:$ALERTMANAGER_PORT/
  bridge         http://127.0.0.1:$BRIDGE_PORT/  (Alertmanager posts to /alertmanager)
  receiver       http://127.0.0.1:$RECEIVER_PORT/webhook  (prints to $LOGS/receiver.log)

Credentials (never printed; each file is readable by $(id -un) only):
  bridge token   $SECRETS/bridge-token
  admin token    $SECRETS/admin-token
  webhook key    $SECRETS/webhook-shared-key

Add a Slack or PagerDuty integration with the CLI (put the Slack bot token
or the PagerDuty routing key alone in a file first), for example:
  export WEBPAAS_API_URL=http://127.0.0.1:$BRIDGE_PORT
  export WEBPAAS_ADMIN_TOKEN_FILE=$SECRETS/admin-token
  $REPO/.venv/bin/webpaas integration:add --type health.slack \\
      --channel '#ops' --token-file slack.token
  $REPO/.venv/bin/webpaas integration:add --type health.pagerduty \\
      --routing-key-file pagerduty.key

Watch notifications:   tail -f $LOGS/receiver.log
Show a demonstration:  $stack demo
Stop everything:       $stack down
EOF
}

cmd_up() {
    log "Setting up this machine (deploy/local/setup.sh)..."
    bash "$REPO/deploy/local/setup.sh"
    log "Starting the stack..."
    start_all normal
    print_endpoints
}

cmd_status() {
    local part pid state=0
    for part in "${PARTS[@]}"; do
        if pid=$(running_pid "$part"); then
            if http_ok "$(ready_url_of "$part")"; then
                log "$part: running (pid $pid) on 127.0.0.1:$(port_of "$part")"
            else
                log "$part: running (pid $pid) but not answering on 127.0.0.1:$(port_of "$part")"
                state=1
            fi
        else
            log "$part: stopped"
            state=3
        fi
    done
    if mountpoint -q "$DEMO_DISK" 2>/dev/null; then
        log "demo disk: mounted on $DEMO_DISK"
    fi
    return "$state"
}

unmount_demo_disk() {
    if mountpoint -q "$DEMO_DISK" 2>/dev/null; then
        umount "$DEMO_DISK"
        log "  demo disk: unmounted from $DEMO_DISK"
    fi
}

cmd_down() {
    local index
    [ -d "$STATE" ] || {
        log "Nothing to stop: $STATE does not exist."
        return 0
    }
    log "Stopping the stack..."
    for ((index = ${#PARTS[@]} - 1; index >= 0; index--)); do
        stop_part "${PARTS[index]}"
    done
    unmount_demo_disk
    rmdir "$DEMO_DISK" 2>/dev/null || true
    log "Stopped. Credentials, data and logs stay in $STATE."
}

# --- demo -------------------------------------------------------------

# Print the receiver's notifications about the demo disk after the first
# $1 of them, each as the block the receiver printed; with $2 = count, print
# only how many there are in all. Other disks of this machine may notify
# during the demo too, so a block counts only when its disk line names the
# demo disk's mount point.
demo_notifications() {
    local skip=$1 mode=${2:-print}
    [ -f "$LOGS/receiver.log" ] || {
        [ "$mode" = count ] && echo 0
        return 0
    }
    awk -v disk="$DEMO_DISK" -v skip="$skip" -v mode="$mode" '
        function flush() {
            if (block != "" && matched && ++seen > skip && mode != "count")
                print block
            block = ""
            matched = 0
        }
        /^\[.*\] signature verified/ { flush(); block = $0; next }
        block != "" && /^([A-Z_]+:|  )/ {
            block = block "\n" $0
            if ($0 ~ /^  disk: / && index($0 ", ", " mountpoint=" disk ", "))
                matched = 1
            next
        }
        { flush() }
        END { flush(); if (mode == "count") print seen + 0 }
    ' "$LOGS/receiver.log"
}

# Resize the demo's fill file so that the given percentage of the scratch
# filesystem stays available to unprivileged writers.
fill_demo_disk() {
    local percent_available=$1 block_size blocks available used_by_others fill
    rm -f "$DEMO_DISK/fill"
    read -r block_size blocks available < <(stat -f -c '%S %b %a' "$DEMO_DISK")
    used_by_others=$(((blocks - available) * block_size))
    fill=$((blocks * block_size * (100 - percent_available) / 100 - used_by_others))
    if ((fill > 0)); then
        fallocate -l "$fill" "$DEMO_DISK/fill"
    fi
    read -r block_size blocks available < <(stat -f -c '%S %b %a' "$DEMO_DISK")
    log "  $DEMO_DISK now has $(awk -v a="$available" -v b="$blocks" \
        'BEGIN { printf "%.1f", 100 * a / b }')% available"
}

# Wait until the receiver has printed a notification about the demo disk
# after the first $1, print it, and check that it reports level $3.
await_notification() {
    local before=$1 expected=$2 level=$3 block
    log "  waiting for the $expected notification (usually 5 to 30 s)..."
    for _ in $(seq 1 90); do
        if (($(demo_notifications 0 count) > before)); then
            block=$(demo_notifications "$before")
            log "  the receiver printed:"
            printf '%s\n' "$block" | sed 's/^/    /'
            grep -qx "  level: $level" <<<"$block" ||
                fail "expected a notification with level $level, the receiver printed another"
            return 0
        fi
        sleep 2
    done
    fail "no $expected notification within 180 s; see $LOGS/bridge.log and http://127.0.0.1:$PROMETHEUS_PORT/alerts"
}

demo_step() {
    local title=$1 percent=$2 expected=$3 level=$4 before
    log ""
    log "$title"
    before=$(demo_notifications 0 count)
    fill_demo_disk "$percent"
    await_notification "$before" "$expected" "$level"
}

restore_after_demo() {
    log ""
    log "Restoring normal intervals..."
    rm -f "$DEMO_DISK/fill"
    apply_changes $(render_configs normal)
    start_part exporter
    unmount_demo_disk
    rmdir "$DEMO_DISK" 2>/dev/null || true
}

cmd_demo() {
    [ "$(id -u)" -eq 0 ] || fail "demo mounts a tmpfs; run it as root: sudo $0 demo"
    bash "$REPO/deploy/local/setup.sh"
    prepare_state
    mkdir -p "$DEMO_DISK"
    if ! mountpoint -q "$DEMO_DISK"; then
        mount -t tmpfs -o "size=$DEMO_DISK_SIZE,mode=0755" webpaas-demo "$DEMO_DISK"
    fi
    trap restore_after_demo EXIT

    log "Demo: intervals are shortened for this demonstration only (scrape and"
    log "rule evaluation every 5 s, Alertmanager grouping 2 to 5 s). The shipped"
    log "rules evaluate every 5 minutes, so real notifications lag by up to that."
    log "Starting the stack with demo intervals..."
    start_all demo

    demo_step "1/4 Fill the scratch disk to 15% available: expect a warning." 15 warning warning
    demo_step "2/4 Fill it to 5% available: expect a critical." 5 critical critical
    demo_step "3/4 Free it to 15% available: expect a warning again (de-escalation)." 15 warning warning
    demo_step "4/4 Free it completely: expect an all-clear." 100 all-clear ok
    log ""
    log "Demo finished: warning, critical, warning and all-clear arrived."
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
demo) cmd_demo ;;
*)
    # The usage is the comment block at the top of this file.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
    ;;
esac
