#!/bin/sh
# Writes the RabbitMQ definitions (deploy/rabbitmq/definitions.json with the three accounts
# filled in) where rabbitmq.conf's load_definitions reads them. docker-compose.yml runs it
# as root in the rabbitmq container before the image's own entrypoint.
#
# One account per service, each with only the permissions it needs (definitions.json):
#   gateway    its own queue duet.gateway.<node>; publish to and bind from duet.rooms;
#              nothing on duet.persist, duet.audit or the dead letters
#   persister  declares the durable path (duet.rooms, duet.persist, duet.dead,
#              duet.dead-letters, duet.audit), consumes duet.persist, publishes notices
#   ops        reads the audit stream duet.audit (duet-admin audit), nothing else
#
# Each account is read from the service's own amqp:// URL, the Docker secret the service
# itself reads (DUET_AMQP_URL_FILE), so user and password are written down once:
#   $SECRETS_DIR/gateway_amqp_url, persister_amqp_url, ops_amqp_url
#   (amqp://USER:PASSWORD@rabbitmq:5672/, made by deploy/make_secrets.py)
# and checked first, so the broker never starts with a placeholder password:
#   USER      1-64 of A-Z a-z 0-9 . _ -
#   PASSWORD  16-128 of A-Z a-z 0-9 . _ ~ -   (characters that need no escaping in a URL)
#
# SECRETS_DIR / DEFINITIONS_TEMPLATE / DEFINITIONS_OUT override the paths (the tests use them).
set -eu

secrets="${SECRETS_DIR:-/run/secrets}"
template="${DEFINITIONS_TEMPLATE:-/etc/duet/rabbitmq/definitions.json}"
out="${DEFINITIONS_OUT:-/etc/rabbitmq/definitions.json}"

fail() {
    echo "render-definitions: $*" >&2
    exit 64
}

script=""
for role in gateway persister ops; do
    file="$secrets/${role}_amqp_url"
    [ -r "$file" ] || fail "no $file (python deploy/make_secrets.py makes it)"
    url=$(tr -d '\r\n' < "$file")
    rest="${url#amqp://}"
    [ "$rest" != "$url" ] || fail "$file: not an amqp:// URL"
    userinfo="${rest%%@*}"
    [ "$userinfo" != "$rest" ] || fail "$file: no USER:PASSWORD@ in the URL"
    user="${userinfo%%:*}"
    password="${userinfo#*:}"
    [ "$password" != "$userinfo" ] || fail "$file: no password in the URL"
    case "$user" in
        "" | *[!A-Za-z0-9._-]*) fail "$role: the user must be 1-64 of A-Z a-z 0-9 . _ -" ;;
    esac
    [ "${#user}" -le 64 ] || fail "$role: the user must be 1-64 of A-Z a-z 0-9 . _ -"
    case "$password" in
        "" | *[!A-Za-z0-9._~-]*) fail "$role: the password must be 16-128 of A-Z a-z 0-9 . _ ~ -" ;;
    esac
    if [ "${#password}" -lt 16 ] || [ "${#password}" -gt 128 ]; then
        fail "$role: the password must be 16-128 of A-Z a-z 0-9 . _ ~ -"
    fi
    lowered=$(printf '%s' "$password" | tr 'A-Z' 'a-z')
    case "$lowered" in
        *change-me* | *changeme* | *changethis* | *password* | *placeholder* | *example*)
            fail "$role: the password looks like a placeholder: python deploy/make_secrets.py" ;;
    esac
    upper=$(printf '%s' "$role" | tr 'a-z' 'A-Z')
    # The checks above leave no character that is special to sed or to JSON.
    script="$script -e s|@${upper}_USER@|$user|g -e s|@${upper}_PASSWORD@|$password|g"
done

umask 077
tmp="$out.tmp.$$"
# shellcheck disable=SC2086  # $script is the list of -e arguments, split on purpose
sed $script "$template" > "$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
    rm -f "$tmp"
    fail "a placeholder of $template was left unfilled"
fi
if id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown rabbitmq:rabbitmq "$tmp"
fi
mv "$tmp" "$out"
echo "render-definitions: accounts for gateway, persister and ops written to $out"
