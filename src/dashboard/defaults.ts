/** Defaults shared by the server and the CLI (which loads the server, and fastify, only when run). */
export const DEFAULT_HOST = '127.0.0.1';
/** TensorBoard's port: a familiar number for a training dashboard. */
export const DEFAULT_PORT = 6006;
