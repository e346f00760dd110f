#!/usr/bin/env bash
# Elasticsearch users for the stack, set from the secret files. Idempotent: run it again after a
# secret changes and the passwords follow.
set -euo pipefail

readonly ES=http://elasticsearch:9200
readonly SECRETS=/run/secrets

secret() { tr -d '\n' <"${SECRETS}/$1"; }

es() {
	local method=$1 path=$2 body=${3:-}
	local -a argv=(curl --silent --show-error --fail-with-body --max-time 30
		--user "elastic:$(secret elastic_password)" --request "${method}"
		--header 'Content-Type: application/json' "${ES}${path}")
	[[ -n ${body} ]] && argv+=(--data "${body}")
	"${argv[@]}"
	printf '\n'
}

wait_for_elasticsearch() {
	# poll every 2s, at most 180s
	local waited=0
	until es GET /_cluster/health?wait_for_status=yellow\&timeout=1s >/dev/null 2>&1; do
		((waited >= 180)) && {
			printf '[x] elasticsearch did not answer within 180s\n' >&2
			exit 1
		}
		printf '[+] waiting for elasticsearch (%ss)\n' "${waited}" >&2
		sleep 2
		waited=$((waited + 2))
	done
}

main() {
	wait_for_elasticsearch
	printf '[+] kibana_system password\n' >&2
	es POST /_security/user/kibana_system/_password \
		"{\"password\": \"$(secret kibana_system_password)\"}" >/dev/null
	printf '[+] role and user for logstash\n' >&2
	es PUT /_security/role/logstash_writer '{
	  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
	  "indices": [{"names": ["ai-finance-*"], "privileges": ["write", "create", "create_index", "manage", "manage_ilm"]}]
	}' >/dev/null
	es PUT /_security/user/logstash_internal \
		"{\"password\": \"$(secret logstash_internal_password)\", \"roles\": [\"logstash_writer\"]}" >/dev/null
	printf '[+] read-only role and user for grafana\n' >&2
	es PUT /_security/role/ai_finance_reader '{
	  "indices": [{"names": ["ai-finance-*"], "privileges": ["read", "view_index_metadata"]}]
	}' >/dev/null
	es PUT /_security/user/grafana_reader \
		"{\"password\": \"$(secret grafana_es_password)\", \"roles\": [\"ai_finance_reader\"]}" >/dev/null
	printf '[+] elasticsearch users are set\n' >&2
}

main "$@"
