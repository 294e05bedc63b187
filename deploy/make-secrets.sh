#!/usr/bin/env bash
# Generate the secrets docker-compose.yml needs; it refuses to start without them.
#
#   deploy/make-secrets.sh [--registry PATH] [--site ID]... [--without-simulator] [--root DIR]
#
# Writes, under DIR (default: the repository):
#   .env                          passwords of hazmon's broker and database users, which compose
#                                 interpolates, and of the read-only events user for integrators
#                                 (kept when present: InfluxDB creates its users only on its
#                                 first start, so a changed password would lock hazmon out)
#   deploy/secrets/gateways.csv   site,device,user,password of each gateway: hand them out
#   deploy/secrets/mosquitto/passwd, deploy/secrets/mosquitto/acl
#                                 the broker's users and their topics (rewritten every run)
#
# One user per gateway of the registry (default sensors/examples): each `device` its sensors
# name gets user gw.<site>.<device>, which may publish only under hazmon/v1/<site>/<device>/, so
# the broker proves which gateway a reading comes from. A site with sensors that name no device
# (or named with --site ID, repeated) gets a site-wide user gw-<site> (device `*` in the file),
# which may publish under any device of its site. Run it again after adding sites or gateways:
# existing passwords are kept, new gateways get new ones. The broker's users are every line of
# gateways.csv, so a run never locks a gateway out; to revoke one, delete its line there and run
# the script again. A gateways.csv of the older site,user,password form is converted (those
# users become site-wide).
# Every password is random (32 characters of A-Z a-z 0-9, about 190 bits); none is a default.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
registry="$root/sensors/examples"
sites=()
simulator=1

while [ $# -gt 0 ]; do
    case "$1" in
        --registry) registry="$2"; shift 2 ;;
        --site) sites+=("$2"); shift 2 ;;
        --without-simulator) simulator=0; shift ;;
        --root) root="$2"; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "make-secrets: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

umask 077  # everything written here is a secret or derived from one
secrets="$root/deploy/secrets"
mkdir -p "$secrets/mosquitto"

# The broker's users besides the gateways; docker-compose.yml uses the same names.
INGEST_USER=hazmon-ingest          # equals hazmon's default client id (the broker forces id = user)
EVENTS_USER=hazmon-ingest-events   # a second user: one connection per user (mosquitto.conf)
SIMULATOR_USER=hazmon-simulator
HEALTHCHECK_USER=healthcheck
EVENTS_READER_USER=events-reader   # for integrators (SCADA, dashboards): reads events only

random_password() {
    # alphanumeric only: the passwords go into URLs (mqtt://user:pass@host) and .env unquoted
    LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

list_gateways() {
    # site,device of each gateway of a registry file or folder (docs/contracts.md §2): every
    # device its sensors name, and `*` for a site with sensors that name none. Python with PyYAML
    # reads YAML properly; a grep over indentation would not.
    "${PYTHON:-python3}" - "$registry" <<'PY'
import json, pathlib, sys
import yaml
path = pathlib.Path(sys.argv[1])
files = [path] if path.is_file() else sorted(
    p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
for f in files:
    text = f.read_text(encoding="utf-8")
    doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    for site in (doc or {}).get("sites") or []:
        # computed sensors (`compute`) are derived by hazmon: no gateway publishes them
        sensors = [s for s in site.get("sensors") or [] if not s.get("compute")]
        devices = sorted({str(s["device"]) for s in sensors if s.get("device")})
        if not sensors or any(not s.get("device") for s in sensors):
            devices.append("*")
        for device in devices:  # escaped: a line break in an id must not make a line of its own
            print(f"{site['id']},{device}".encode("unicode_escape").decode("ascii"))
PY
}

gateways_wanted=()
for site in "${sites[@]}"; do gateways_wanted+=("$site,*"); done
if [ ${#sites[@]} -eq 0 ]; then
    if ! listed="$(list_gateways)"; then
        echo "make-secrets: cannot read the registry $registry (needs python3 with PyYAML," \
             "or name the sites with --site ID)" >&2
        exit 1
    fi
    [ -z "$listed" ] || mapfile -t gateways_wanted <<<"$listed"
fi
[ ${#gateways_wanted[@]} -gt 0 ] || { echo "make-secrets: no sites in $registry" >&2; exit 1; }
id_pattern='[a-z0-9][a-z0-9_-]{0,63}'
for wanted in "${gateways_wanted[@]}"; do
    # the ids go into ACL lines and user names: the registry's own pattern keeps out blanks, +, #
    # and the dot that separates them in a user name
    site="${wanted%%,*}" device="${wanted#*,}"
    if ! [[ "$site" =~ ^$id_pattern$ ]]; then
        echo "make-secrets: bad site id '$site' (docs/contracts.md §2)" >&2
        exit 1
    fi
    if [ "$device" != "*" ] && ! [[ "$device" =~ ^$id_pattern$ ]]; then
        echo "make-secrets: bad device id '$device' of site $site (docs/contracts.md §2)" >&2
        exit 1
    fi
done

# --- .env: service passwords, kept when present --------------------------------------------------
env_file="$root/.env"
touch "$env_file"
ensure_var() {
    grep -q "^$1=" "$env_file" || printf '%s=%s\n' "$1" "$(random_password)" >>"$env_file"
}
value_of() {
    sed -n "s/^$1=//p" "$env_file" | tail -n 1
}
grep -q '^# deploy/make-secrets.sh' "$env_file" ||
    printf '# deploy/make-secrets.sh: passwords for docker-compose.yml; never commit this file\n' >>"$env_file"
for var in INFLUX_ADMIN_PASSWORD INFLUX_USER_PASSWORD MQTT_INGEST_PASSWORD MQTT_EVENTS_PASSWORD \
           MQTT_SIMULATOR_PASSWORD MQTT_HEALTHCHECK_PASSWORD MQTT_EVENTS_READER_PASSWORD; do
    ensure_var "$var"
done
chmod 600 "$env_file"

# --- gateways.csv: one user per gateway, kept when present ---------------------------------------
gateways="$secrets/gateways.csv"
if [ -f "$gateways" ] && [ "$(head -n 1 "$gateways")" = "site,user,password" ]; then
    # the older form, one user per site: keep every user and password, as site-wide users
    { printf 'site,device,user,password\n'; tail -n +2 "$gateways" | sed 's/^\([^,]*\),/\1,*,/'; } \
        >"$gateways.new"
    mv "$gateways.new" "$gateways"
fi
[ -f "$gateways" ] || printf 'site,device,user,password\n' >"$gateways"
added=0
for wanted in "${gateways_wanted[@]}"; do
    site="${wanted%%,*}" device="${wanted#*,}"
    if ! awk -F, -v s="$site" -v d="$device" '$1 == s && $2 == d { found = 1 } END { exit !found }' \
        "$gateways"; then
        if [ "$device" = "*" ]; then user="gw-$site"; else user="gw.$site.$device"; fi
        printf '%s,%s,%s,%s\n' "$site" "$device" "$user" "$(random_password)" >>"$gateways"
        added=$((added + 1))
    fi
done
chmod 600 "$gateways"
gateway_rows() { tail -n +2 "$gateways"; }  # site,device,user,password without the header
# a hand-edited line must not break the password file or the ACL
row_pattern="^($id_pattern),(\\*,gw-\\1|($id_pattern),gw\\.\\1\\.\\3),[A-Za-z0-9]{16,}\$"
if bad="$(gateway_rows | grep -Ev "$row_pattern")"; then
    echo "make-secrets: bad lines in $gateways (site,device,gw.<site>.<device>,password or site,*,gw-<site>,password):" >&2
    echo "$bad" >&2
    exit 1
fi

# --- the broker's password file ------------------------------------------------------------------
plain="$(mktemp "$secrets/mosquitto/passwd.XXXXXX")"
trap 'rm -f "$plain"' EXIT
{
    printf '%s:%s\n' "$INGEST_USER" "$(value_of MQTT_INGEST_PASSWORD)"
    printf '%s:%s\n' "$EVENTS_USER" "$(value_of MQTT_EVENTS_PASSWORD)"
    printf '%s:%s\n' "$HEALTHCHECK_USER" "$(value_of MQTT_HEALTHCHECK_PASSWORD)"
    printf '%s:%s\n' "$EVENTS_READER_USER" "$(value_of MQTT_EVENTS_READER_PASSWORD)"
    [ "$simulator" = 0 ] || printf '%s:%s\n' "$SIMULATOR_USER" "$(value_of MQTT_SIMULATOR_PASSWORD)"
    gateway_rows | cut -d, -f3,4 | tr , :
} >"$plain"
# mosquitto_passwd -U hashes a user:password file in place (PBKDF2-SHA512). Without Mosquitto on
# this host, the broker's own image does it.
if command -v mosquitto_passwd >/dev/null; then
    mosquitto_passwd -U "$plain"
else
    docker run --rm --user "$(id -u):$(id -g)" -v "$secrets/mosquitto:/m" eclipse-mosquitto:2 \
        mosquitto_passwd -U "/m/$(basename "$plain")"
fi
# Readable by the broker, which runs as its own user (uid 1883 in the image) and reads the file
# after dropping root. It holds only hashes of random passwords.
chmod 644 "$plain"
mv "$plain" "$secrets/mosquitto/passwd"

# --- the broker's ACL ----------------------------------------------------------------------------
acl="$secrets/mosquitto/acl"
{
    cat <<EOF
# Generated by deploy/make-secrets.sh from the registry: edit the script, not this file.
# Mosquitto acl_file: anything not granted here is denied to every user. A denied PUBLISH is
# dropped (MQTT v5 clients get reason code 135, 3.1.1 clients a plain PUBACK); a denied
# subscription gets nothing delivered. Topics: docs/contracts.md §1.

# hazmon's ingest session: every site's readings and device status
user $INGEST_USER
topic read hazmon/v1/+/+/readings
topic read hazmon/v1/+/+/status

# hazmon's event output: alarm events of every site
user $EVENTS_USER
topic write hazmon/v1/+/events

# the broker's healthcheck in docker-compose.yml
user $HEALTHCHECK_USER
topic read \$SYS/broker/version

# integrators (SCADA bridges, dashboards): alarm events of every site, nothing else (one
# connection at a time, like every user: mosquitto.conf binds client ids to user names)
user $EVENTS_READER_USER
topic read hazmon/v1/+/events
EOF
    if [ "$simulator" = 1 ]; then
        cat <<EOF

# the simulated fleet (compose profile "simulator") publishes as every site: leave it out in
# production (--without-simulator)
user $SIMULATOR_USER
topic write hazmon/v1/+/+/readings
topic write hazmon/v1/+/+/status
EOF
    fi
    printf '\n# the gateways: readings and device status under their own device topic (a site-wide user:\n'
    printf '# under any device of its site), nothing to read\n'
    gateway_rows | while IFS=, read -r site device user _password; do
        [ "$device" = "*" ] && device="+"
        printf 'user %s\ntopic write hazmon/v1/%s/%s/readings\ntopic write hazmon/v1/%s/%s/status\n\n' \
            "$user" "$site" "$device" "$site" "$device"
    done
} >"$acl.tmp"
chmod 644 "$acl.tmp"  # read by the broker's own user, like the password file
mv "$acl.tmp" "$acl"

echo "make-secrets: $(gateway_rows | wc -l) gateway users ($added new); secrets in $env_file and $secrets" >&2
