import { describe, expect, it } from 'vitest';
import { egressEntryProblem } from '../config.js';
import { createEgressPolicy, egressDenied, findEgressDenial, normalizeAddress } from './egress.js';

const production = createEgressPolicy({ production: true, allow: [] });
const development = createEgressPolicy({ production: false, allow: [] });
const allowing = createEgressPolicy({
  production: true,
  allow: [
    '10.1.0.0/16',
    '127.0.0.1',
    'relay.corp.example',
    'fd12:3456::/32',
    ' [::1] ',
    '169.254.169.254',
    '169.254.0.0/16',
    'metadata.google.internal',
  ],
});

const verdict = (policy: typeof production, address: string, host = address) => {
  const v = policy.check(host, address);
  return v.allowed ? 'allowed' : v.reason;
};

describe('egress policy', () => {
  it.each([
    // address, production, development
    ['93.184.215.14', 'allowed', 'allowed'],
    ['2606:4700::6810:84e5', 'allowed', 'allowed'],
    ['127.0.0.1', 'loopback', 'allowed'],
    ['127.53.0.9', 'loopback', 'allowed'],
    ['::1', 'loopback', 'allowed'],
    ['10.0.0.8', 'private', 'allowed'],
    ['172.16.4.4', 'private', 'allowed'],
    ['172.32.0.1', 'allowed', 'allowed'],
    ['192.168.1.10', 'private', 'allowed'],
    ['100.64.3.3', 'private', 'allowed'],
    ['fd00::5', 'private', 'allowed'],
    ['fc00::1', 'private', 'allowed'],
    ['169.254.169.254', 'metadata', 'metadata'],
    ['169.254.170.2', 'metadata', 'metadata'],
    ['100.100.100.200', 'metadata', 'metadata'],
    ['fd00:ec2::254', 'metadata', 'metadata'],
    ['169.254.1.1', 'link_local', 'link_local'],
    ['fe80::1', 'link_local', 'link_local'],
    ['fe80::1%eth0', 'link_local', 'link_local'],
    ['febf::1', 'link_local', 'link_local'],
    ['0.0.0.0', 'reserved', 'reserved'],
    ['::', 'reserved', 'reserved'],
    ['224.0.0.1', 'reserved', 'reserved'],
    ['255.255.255.255', 'reserved', 'reserved'],
    ['ff02::1', 'reserved', 'reserved'],
  ])('%s → %s in production, %s otherwise', (address, inProduction, otherwise) => {
    expect(verdict(production, address)).toBe(inProduction);
    expect(verdict(development, address)).toBe(otherwise);
  });

  it.each([
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['[::ffff:10.0.0.1]', 'private'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::10.2.3.4', 'private'],
    ['::ffff:93.184.215.14', 'allowed'],
  ])('IPv4 inside IPv6: %s → %s', (address, expected) => {
    expect(verdict(production, address)).toBe(expected);
  });

  it('normalizes embedded IPv4 and zone ids', () => {
    expect(normalizeAddress('::FFFF:7F00:0001')).toBe('127.0.0.1');
    expect(normalizeAddress('FE80::1%lo0')).toBe('fe80::1');
    expect(normalizeAddress('2001:db8::1')).toBe('2001:db8::1');
  });

  it('opens loopback and private space only for listed names, addresses and CIDRs', () => {
    expect(verdict(allowing, '10.1.200.3')).toBe('allowed');
    expect(verdict(allowing, '10.2.0.1')).toBe('private');
    expect(verdict(allowing, '127.0.0.1')).toBe('allowed');
    expect(verdict(allowing, '::ffff:127.0.0.1')).toBe('allowed');
    expect(verdict(allowing, '127.0.0.2')).toBe('loopback');
    expect(verdict(allowing, '::1')).toBe('allowed');
    expect(verdict(allowing, 'fd12:3456:1::9')).toBe('allowed');
    expect(verdict(allowing, '192.168.7.7', 'RELAY.corp.example.')).toBe('allowed');
    expect(verdict(allowing, '192.168.7.7', 'other.corp.example')).toBe('private');
  });

  it('never opens metadata or link-local space, whatever the list says', () => {
    expect(verdict(allowing, '169.254.169.254')).toBe('metadata');
    expect(verdict(allowing, '169.254.10.10')).toBe('link_local');
    expect(allowing.checkName('metadata.google.internal')).toEqual({ allowed: false, reason: 'metadata' });
    expect(verdict(allowing, '93.184.215.14', 'Metadata.Google.Internal.')).toBe('metadata');
    expect(development.checkName('smtp.gmail.com')).toEqual({ allowed: true });
  });

  it('judges the resolved address, not the name: an innocent name resolving inward is refused', () => {
    expect(verdict(production, '127.0.0.1', 'smtp.example.com')).toBe('loopback');
    expect(verdict(production, '169.254.169.254', 'smtp.example.com')).toBe('metadata');
    expect(verdict(production, '93.184.215.14', 'localhost')).toBe('allowed');
  });

  it('validates allow-list entries', () => {
    for (const ok of [
      '10.0.0.0/8',
      '127.0.0.1',
      '::1',
      '[::1]',
      'fd00::/8',
      'relay.internal',
      'smtp_relay.corp',
      'localhost',
    ])
      expect(egressEntryProblem(ok), ok).toBeNull();
    expect(egressEntryProblem('10.0.0.0/33')).toMatch(/prefix length must be 0-32/);
    expect(egressEntryProblem('fd00::/129')).toMatch(/prefix length must be 0-128/);
    expect(egressEntryProblem('relay/8')).toMatch(/not an IP address/);
    expect(egressEntryProblem('relay.corp:25')).toMatch(/expected a host name, an IP address or a CIDR/);
  });

  it('explains a refusal with the host, the address and MAILGATE_EGRESS_ALLOW', () => {
    const error = egressDenied('smtp.example.com', '10.0.0.8', { allowed: false, reason: 'private' });
    expect(error.code).toBe('egress_denied');
    expect(error.message).toContain('smtp.example.com (10.0.0.8)');
    expect(error.hint).toMatch(/MAILGATE_EGRESS_ALLOW/);
    expect(findEgressDenial(new Error('wrapped', { cause: new Error('again', { cause: error }) }))).toBe(error);
    expect(findEgressDenial(new Error('other'))).toBeUndefined();
  });
});
