// Placeholder until the demo routes land (issue 7): registers nothing yet.
import type { FastifyPluginAsync } from 'fastify';

export type DemoPluginOptions = { appSecret: string };
export const demoPlugin: FastifyPluginAsync<DemoPluginOptions> = async () => {};
