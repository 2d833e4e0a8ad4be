// A realistic load test of backends through apigate: a mix of public routes and
// JWT-authenticated calls, ramping up then down. Bounded: 25 s and at most
// ~rate x time requests (ramping-arrival-rate), loopback only.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/gateway.js
import http from 'k6/http';
import { check } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(BASE)) {
  throw new Error(`BASE_URL must be a loopback address, got ${BASE}`);
}
// The inline oct key of conf/loadtest/authorizers/bench.json.
const SECRET = __ENV.JWT_SECRET || 'loadtest-secret-for-loopback-only';
const PEAK = Number(__ENV.PEAK_RPS || 2000);

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-arrival-rate',
      startRate: Math.floor(PEAK / 10),
      timeUnit: '1s',
      preAllocatedVUs: 32,
      maxVUs: 128,
      stages: [
        { duration: '5s', target: PEAK },
        { duration: '15s', target: PEAK },
        { duration: '5s', target: 0 },
      ],
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{kind:public}': ['p(99)<250'],
    'http_req_duration{kind:jwt}': ['p(99)<250'],
  },
};

function b64url(s) {
  return encoding.b64encode(s, 'rawurl');
}

function token(sub) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'k1' }));
  const claims = b64url(JSON.stringify({
    sub, iss: 'https://issuer.local', aud: 'bench', scope: 'orders',
    exp: Math.floor(Date.now() / 1000) + 3600,
  }));
  const sig = crypto.hmac('sha256', SECRET, `${header}.${claims}`, 'base64rawurl');
  return `${header}.${claims}.${sig}`;
}

// A handful of users: the gateway's verified-token cache sees realistic repetition.
const TOKENS = Array.from({ length: 50 }, (_, i) => token(`user-${i}`));

export default function () {
  const r = Math.random();
  let res;
  if (r < 0.5) {
    res = http.get(`${BASE}/items/${Math.floor(Math.random() * 1000)}`, { tags: { kind: 'public', name: 'GET /items/{id}' } });
  } else if (r < 0.7) {
    res = http.get(`${BASE}/search?q=widgets&page=${Math.floor(Math.random() * 10)}`, { tags: { kind: 'public', name: 'GET /search' } });
  } else {
    const t = TOKENS[Math.floor(Math.random() * TOKENS.length)];
    res = http.post(`${BASE}/orders/${Math.floor(Math.random() * 100)}/lines`, JSON.stringify({ sku: 'A-1', qty: 2 }), {
      headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' },
      tags: { kind: 'jwt', name: 'ANY /orders/{proxy+}' },
    });
  }
  check(res, { 'status is 200': (x) => x.status === 200 });
}
