# pveflow: one image for the API and the workers (docker-compose.yml runs it both ways).
# Built from the lockfile, without dev dependencies: tsx runs the TypeScript sources directly, and the worker
# bundles the workflows at start-up, so there is no compile step to go wrong between test and image.
FROM node:20-slim

WORKDIR /app

# PVEFLOW_SKIP_TOOLS: the postinstall script would fetch Temporal's dev server; here Temporal runs in its own
# containers. NODE_ENV=production also makes start-up refuse PVE_INSECURE_SKIP_VERIFY.
ENV NODE_ENV=production \
    PVEFLOW_SKIP_TOOLS=1

# npm ci runs the postinstall scripts (they exit at once under PVEFLOW_SKIP_TOOLS), so they must be in the image first.
COPY package.json package-lock.json ./
COPY scripts/install-temporal-binaries.mjs scripts/install-reference-data.mjs ./scripts/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY src ./src

# Secrets arrive at run time (env file, /run/secrets); nothing secret is baked into a layer. Not root.
RUN mkdir -p /var/lib/pveflow/credential-keys && chown node:node /var/lib/pveflow/credential-keys && chmod 700 /var/lib/pveflow/credential-keys
USER node

# The worker by default; the API service overrides the command.
CMD ["node_modules/.bin/tsx", "src/worker.ts"]
