# Sourced by scripts/test and scripts/chaos: makes sure the servers the
# suites talk to are up. MariaDB on 127.0.0.1:3306 (root, empty password)
# and Redis on 127.0.0.1:6379; one that is installed but stopped is
# started, one that is missing is installed with apt-get when running as
# root.

MYSQL_HOST=127.0.0.1
MYSQL_PORT=3306
REDIS_PORT=6379

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$name did not start listening on port $port"
  return 1
}

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "$* missing and cannot be installed here (needs root and apt-get)"
    return 1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_mariadb() {
  # The fault scenarios start private servers, so the binaries are needed
  # even when the shared server runs elsewhere.
  if ! command -v mariadb-install-db >/dev/null || { ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; }; then
    apt_install mariadb-server
  fi
  if ! port_open "$MYSQL_PORT"; then
    log "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    wait_for_port "$MYSQL_PORT" MariaDB
  fi
  # A fresh Debian install lets root in only through the Unix socket; the
  # suites connect over TCP as root with an empty password.
  if ! mariadb -h "$MYSQL_HOST" -P "$MYSQL_PORT" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    log "allowing root over TCP with an empty password (test server only)"
    mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  if port_open "$REDIS_PORT"; then return 0; fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/test.log
  wait_for_port "$REDIS_PORT" Redis
}

# The console's browser tests (tests/api/console.rs) drive Debian's
# chromium headless with Playwright for Python, pointed at that executable:
# no browser is downloaded.
ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
  fi
  # Without a CJK font the Chinese pages' screenshots show empty boxes.
  if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    apt_install fonts-wqy-microhei
  fi
  if ! python3 -c 'import playwright' 2>/dev/null; then
    log "installing playwright from PyPI (console browser tests)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'playwright>=1.40,<2'
  fi
}

# The interop tests verify our signatures with reference libraries.
# The Java SDK (sdk/java) builds offline from Debian's Maven repository:
# Jackson, JUnit 5 and the Maven plugins its pom pins, as Debian packages.
ensure_java_sdk() {
  local repo=/usr/share/maven-repo
  if command -v mvn >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 \
    && [ -d "$repo/com/fasterxml/jackson/core/jackson-databind/2.14.0" ] \
    && [ -d "$repo/org/junit/jupiter/junit-jupiter/5.9.2" ] \
    && [ -d "$repo/org/apache/maven/plugins/maven-surefire-plugin/2.22.3" ] \
    && [ -d "$repo/org/apache/maven/plugins/maven-compiler-plugin/3.10.1" ] \
    && [ -d "$repo/org/apache/maven/plugins/maven-jar-plugin/3.3.0" ] \
    && [ -d "$repo/org/apache/maven/plugins/maven-resources-plugin/3.3.0" ]; then
    return
  fi
  apt_install openjdk-17-jdk-headless maven libjackson2-databind-java junit5 \
    libmaven-compiler-plugin-java libsurefire-java libmaven-jar-plugin-java \
    libmaven-resources-plugin-java
}

ensure_python_interop() {
  if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
    log "installing the standardwebhooks package from PyPI (interop tests)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore standardwebhooks
  fi
  # The metrics suite parses /metrics with Prometheus' own client library.
  if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    log "installing prometheus-client from PyPI (metrics format check)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore prometheus-client
  fi
  # The deploy suite validates the Kubernetes manifests against their schemas.
  if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
    log "installing kubernetes-validate from PyPI (deploy manifests check)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore kubernetes-validate
  fi
  # The API fuzzing suite (tests/api/fuzz.rs) runs schemathesis.
  if ! command -v schemathesis >/dev/null 2>&1; then
    log "installing schemathesis from PyPI (API fuzzing)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'schemathesis>=4,<5'
  fi
}
