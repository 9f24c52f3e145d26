#!/bin/bash
# Creates mastersocket's table in LocalStack, exactly as template.yaml's Table:
# key pk (S, HASH) + sk (S, RANGE), the index "connections" (connShard HASH,
# connectedAt RANGE), on-demand billing, TTL on expiresAt.
# (PITR and SSE are left out: they change nothing for a local table.)
# LocalStack runs it from /etc/localstack/init/ready.d once DynamoDB is ready;
# internal/emulator/template's tests check that it matches template.yaml.
set -euo pipefail

TABLE_NAME="${TABLE_NAME:-mastersocket}"

if awslocal dynamodb describe-table --table-name "$TABLE_NAME" >/dev/null 2>&1; then
  echo "create-table: $TABLE_NAME exists"
  exit 0
fi

awslocal dynamodb create-table \
  --table-name "$TABLE_NAME" \
  --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
    AttributeName=connShard,AttributeType=S AttributeName=connectedAt,AttributeType=N \
  --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
  --global-secondary-indexes '[{"IndexName":"connections","KeySchema":[{"AttributeName":"connShard","KeyType":"HASH"},{"AttributeName":"connectedAt","KeyType":"RANGE"}],"Projection":{"ProjectionType":"INCLUDE","NonKeyAttributes":["serviceId","group","identifiedAt","expiresAt"]}}]' \
  --billing-mode PAY_PER_REQUEST \
  >/dev/null

awslocal dynamodb wait table-exists --table-name "$TABLE_NAME"

awslocal dynamodb update-time-to-live \
  --table-name "$TABLE_NAME" \
  --time-to-live-specification Enabled=true,AttributeName=expiresAt \
  >/dev/null

echo "create-table: created $TABLE_NAME"
