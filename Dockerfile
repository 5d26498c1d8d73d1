# mailgate: build the TypeScript once, run the compiled service as a non-root user.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-slim
ENV NODE_ENV=production \
    PORT=3000 \
    MAILGATE_HOST=0.0.0.0 \
    MAILGATE_DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY views ./views
COPY public ./public
COPY bin ./bin
# The embedded store (used only without REDIS_URL) writes here; the image's `node` user owns it.
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# npm start would rebuild; the image runs the compiled code directly, with npm start's flags (a young generation of
# 8 MB semi-spaces: see "Capacity" in the README). SIGTERM reaches node (graceful shutdown).
CMD ["node", "--max-semi-space-size=8", "dist/main.js"]
