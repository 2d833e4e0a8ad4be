# Helpers shared by scripts/*.sh. Sourced, not run:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# port_open HOST PORT: whether something accepts TCP connections there (1 s at most: a host
# that drops packets would otherwise hang the connect for minutes).
port_open() {
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# need_free_port HOST PORT: exits the script with status 1 when something already listens
# there (say, a gateway left over from an earlier run), which the process about to be
# started would fail to bind while wait_for_port saw the old one answer.
need_free_port() {
  if port_open "$1" "$2"; then
    echo "${0##*/}: something already listens on $1:$2; stop it first" >&2
    exit 1
  fi
}

# wait_for_port HOST PORT PID TIMEOUT [LOG]
#
# Returns once something accepts TCP connections on HOST:PORT (polled every 0.1 s). Fails
# loudly when process PID (the one meant to listen there) exits first, or when nothing
# listens within TIMEOUT seconds: says which, prints the last lines of LOG (the process's
# output, when the caller keeps it in a file) and exits the script with status 1 (its EXIT
# trap still runs).
wait_for_port() {
  local host=$1 port=$2 pid=$3 timeout=$4 log=${5:-}
  local deadline=$((SECONDS + timeout)) why
  while true; do
    if port_open "$host" "$port"; then
      kill -0 "$pid" 2>/dev/null && return 0
      why="$host:$port is open but process $pid has exited: something else holds the port"
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      local status=""
      if [[ " $(jobs -p | tr '\n' ' ') " == *" $pid "* ]]; then
        local rc=0
        wait "$pid" || rc=$?
        status=" (status $rc)"
      fi
      why="process $pid exited$status before listening on $host:$port"
      break
    fi
    if ((SECONDS >= deadline)); then
      why="nothing listens on $host:$port after ${timeout}s (process $pid is still running)"
      break
    fi
    sleep 0.1
  done
  {
    echo "${0##*/}: $why"
    if [[ -n $log && -s $log ]]; then
      echo "--- last lines of $log:"
      tail -n 20 "$log"
      echo "---"
    elif [[ -n $log ]]; then
      echo "(nothing in its log $log)"
    fi
  } >&2
  exit 1
}

# need_python IMPORTS PACKAGES...: installs the PyPI PACKAGES with pip unless python3 can
# already `import IMPORTS` (comma-separated). On a Debian python3 without pip, python3-pip
# comes from apt-get first. Debian marks its python3 "externally managed" (PEP 668), so pip
# refuses to install there; these are test and example dependencies, not system packages,
# so the install is retried with --break-system-packages knowingly (a pyenv or virtualenv
# python, as on the CI machine, takes the first attempt).
need_python() {
  local imports="$1"; shift
  python3 -c "import $imports" 2>/dev/null && return 0
  if ! python3 -m pip --version >/dev/null 2>&1; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  python3 -m pip install -q "$@" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "$@"
  python3 -c "import $imports" || { echo "${0##*/}: could not install $*" >&2; exit 1; }
}
