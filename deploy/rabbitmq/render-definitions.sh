#!/bin/sh
# Writes the RabbitMQ definitions (deploy/rabbitmq/definitions.json with the account from
# .env filled in) where rabbitmq.conf's load_definitions reads them. docker-compose.yml runs
# it as root in the rabbitmq container before the image's own entrypoint.
#
# The account is checked first, so the broker never starts with a placeholder password:
#   RABBITMQ_USER      1-64 of A-Z a-z 0-9 . _ -
#   RABBITMQ_PASSWORD  16-128 of A-Z a-z 0-9 . _ ~ -   (it is also the password in the
#                      services' amqp:// URL, where these characters need no escaping), e.g.
#                      python -c "import secrets; print(secrets.token_urlsafe(32))"
#
# DEFINITIONS_TEMPLATE / DEFINITIONS_OUT override the paths (the tests use them).
set -eu

template="${DEFINITIONS_TEMPLATE:-/etc/duet/rabbitmq/definitions.json}"
out="${DEFINITIONS_OUT:-/etc/rabbitmq/definitions.json}"
user="${RABBITMQ_USER:-}"
password="${RABBITMQ_PASSWORD:-}"

fail() {
    echo "render-definitions: $*" >&2
    exit 64
}

case "$user" in
    "" | *[!A-Za-z0-9._-]*) fail "RABBITMQ_USER must be 1-64 of A-Z a-z 0-9 . _ -" ;;
esac
[ "${#user}" -le 64 ] || fail "RABBITMQ_USER must be 1-64 of A-Z a-z 0-9 . _ -"
case "$password" in
    "" | *[!A-Za-z0-9._~-]*) fail "RABBITMQ_PASSWORD must be 16-128 of A-Z a-z 0-9 . _ ~ -" ;;
esac
if [ "${#password}" -lt 16 ] || [ "${#password}" -gt 128 ]; then
    fail "RABBITMQ_PASSWORD must be 16-128 of A-Z a-z 0-9 . _ ~ -"
fi
lowered=$(printf '%s' "$password" | tr 'A-Z' 'a-z')
case "$lowered" in
    *change-me* | *changeme* | *changethis* | *password* | *placeholder* | *example*)
        fail "RABBITMQ_PASSWORD looks like a placeholder: generate one (see .env.example)" ;;
esac

# The checks above leave no character that is special to sed or to JSON.
umask 077
tmp="$out.tmp.$$"
sed -e "s|@RABBITMQ_USER@|$user|g" -e "s|@RABBITMQ_PASSWORD@|$password|g" "$template" > "$tmp"
if id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown rabbitmq:rabbitmq "$tmp"
fi
mv "$tmp" "$out"
echo "render-definitions: account $user written to $out"
