// A TCP proxy on a random loopback port that the tests can cut: every
// connection through it can be destroyed at once, or at random.
import net from "node:net";

export async function startProxy(targetPort) {
  const pairs = new Set();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) return client.destroy();
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Destroys each open connection with probability p; returns how many. */
    cut(p = 1, rand = Math.random) {
      let n = 0;
      for (const pair of [...pairs]) {
        if (rand() < p) {
          pair.client.destroy();
          pair.upstream.destroy();
          n++;
        }
      }
      return n;
    },
    /** While blocked, new connections are refused. */
    block(on) {
      blocked = on;
    },
    close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      return new Promise((r) => server.close(r));
    },
  };
}
