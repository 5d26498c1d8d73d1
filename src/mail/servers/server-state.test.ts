import { describe, expect, it } from 'vitest';
import { serverStateCode, type ServerStateFacts } from './server-state.js';

const healthy: ServerStateFacts = {
  sendingEnabled: true,
  authMethod: 'oauth2',
  integrationProblem: false,
  grantStatus: 'active',
  paused: false,
  lastTestOk: true,
};

describe('serverStateCode: the first that applies, in the order of DESIGN.md', () => {
  it('walks the order from sending_disabled down to ok', () => {
    const everything: ServerStateFacts = {
      sendingEnabled: false,
      authMethod: 'oauth2',
      integrationProblem: true,
      grantStatus: null,
      paused: true,
      lastTestOk: false,
    };
    expect(serverStateCode(everything)).toBe('sending_disabled');
    expect(serverStateCode({ ...everything, sendingEnabled: true })).toBe('misconfigured');
    expect(serverStateCode({ ...everything, sendingEnabled: true, integrationProblem: false })).toBe('not_authorized');
    const authorizedButDead = {
      ...everything,
      sendingEnabled: true,
      integrationProblem: false,
      grantStatus: 'needs_reauth',
    };
    expect(serverStateCode(authorizedButDead)).toBe('needs_reauth');
    expect(serverStateCode({ ...authorizedButDead, grantStatus: 'active' })).toBe('paused');
    expect(serverStateCode({ ...authorizedButDead, grantStatus: 'active', paused: false })).toBe('test_failed');
    expect(serverStateCode(healthy)).toBe('ok');
  });

  it('grant facts count only for oauth2 servers; no test yet is not a failure', () => {
    const basic = { ...healthy, authMethod: 'basic', grantStatus: null, integrationProblem: true, lastTestOk: null };
    expect(serverStateCode(basic)).toBe('ok');
    expect(serverStateCode({ ...basic, lastTestOk: false })).toBe('test_failed');
  });
});
