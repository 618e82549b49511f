// Placeholder until the settings page lands (issue 7): registers nothing yet.
import type { FastifyPluginAsync } from 'fastify';

export const settingsPagePlugin: FastifyPluginAsync = async () => {};
