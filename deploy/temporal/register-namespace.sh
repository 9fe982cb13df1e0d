#!/bin/sh
# pveflow's namespace and its search attributes on a Temporal cluster, with the `temporal` CLI and its own variables
# (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE). Safe to run again: what exists is kept. The attributes are the ones
# src/workflows/searchAttributes.ts defines (a test holds the two lists together); pveflow's workflows are refused
# upserts of any attribute the namespace lacks.
# TEMPORAL_NAMESPACE_RETENTION: how long closed workflows' histories are kept (default 30d).
# TLS and credentials are the CLI's own variables too (TEMPORAL_TLS_*, TEMPORAL_API_KEY), the ones pveflow reads;
# TEMPORAL_API_KEY_FILE, pveflow's way to mount the key as a secret, is read here into TEMPORAL_API_KEY.
# Used as it is by docker-compose.yml (temporal-setup) and by the topology test.
set -eu
ns=${TEMPORAL_NAMESPACE:-default}
retention=${TEMPORAL_NAMESPACE_RETENTION:-30d}
if [ -n "${TEMPORAL_API_KEY_FILE:-}" ] && [ -z "${TEMPORAL_API_KEY:-}" ]; then
  TEMPORAL_API_KEY=$(cat "$TEMPORAL_API_KEY_FILE")
  export TEMPORAL_API_KEY
fi

tries=0
until temporal operator cluster health >/dev/null 2>&1; do
  tries=$((tries + 1)); [ "$tries" -lt 120 ] || { echo "register-namespace: Temporal at ${TEMPORAL_ADDRESS:-127.0.0.1:7233} is not healthy" >&2; exit 1; }
  sleep 1
done

if temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1; then
  echo "register-namespace: namespace $ns exists"
else
  temporal operator namespace create --namespace "$ns" --retention "$retention"
fi
# A new namespace takes a moment to reach every service.
tries=0
until temporal operator search-attribute list --namespace "$ns" >/dev/null 2>&1; do
  tries=$((tries + 1)); [ "$tries" -lt 60 ] || { echo "register-namespace: namespace $ns is not usable" >&2; exit 1; }
  sleep 1
done

# name=type, one word each: what the create command below is given, and what is checked after it.
attributes="Serial=Keyword Org=Keyword RequestStatus=Keyword BuildStatus=Keyword VmId=Int PveNode=Keyword Consultants=KeywordList PeriodStart=Datetime PeriodEnd=Datetime VmState=Keyword ClassId=Keyword VmName=Keyword"
set --
for a in $attributes; do set -- "$@" --name "${a%%=*}" --type "${a#*=}"; done
temporal operator search-attribute create --namespace "$ns" "$@"

registered=$(temporal operator search-attribute list --namespace "$ns")
for a in $attributes; do
  echo "$registered" | grep -qw "${a%%=*}" || { echo "register-namespace: search attribute ${a%%=*} is missing" >&2; exit 1; }
done
echo "register-namespace: $ns has pveflow's search attributes"
