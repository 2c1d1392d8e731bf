# openbell's image. Node 24 runs the TypeScript sources directly (type stripping), so there is no
# build step: the image is the runtime files of the repository (.dockerignore leaves out tests,
# data and caches) and the production dependencies. The same Node release as the `node`
# devDependency that development and CI run on.
FROM node:24.21.0-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .
# Where compose's replay profile keeps its recording: a new volume takes this owner.
RUN mkdir /recordings && chown node:node /recordings

USER node
# `openbell <command>`: mdp, lba, feed, exporter, replay… (compose passes the command).
ENTRYPOINT ["node", "cli/main.ts"]
CMD ["--help"]
