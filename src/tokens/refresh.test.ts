import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffMs, needsRefresh, refreshDueAt, refreshMarginMs } from './refresh.js';

const grant = (obtainedAt: number, lifetimeMs: number, status: 'active' | 'needs_reauth' = 'active') => ({
  status,
  tokens: { obtainedAt, expiresAt: obtainedAt + lifetimeMs },
});

describe('needsRefresh', () => {
  it('refreshes in the last 20 % of a short-lived token, not on every use', () => {
    const g = grant(0, 5000);
    expect(refreshMarginMs(g.tokens)).toBe(1000);
    expect(needsRefresh(g, 0)).toBe(false);
    expect(needsRefresh(g, 3999)).toBe(false);
    expect(needsRefresh(g, 4000)).toBe(true);
    expect(needsRefresh(g, 9000)).toBe(true);
  });

  it('caps the margin at 5 minutes for an hour-long token', () => {
    const g = grant(0, 3600_000);
    expect(refreshMarginMs(g.tokens)).toBe(300_000);
    expect(refreshDueAt(g)).toBe(3300_000);
  });

  it('never refreshes a grant that needs re-authorization', () => {
    expect(needsRefresh(grant(0, 1000, 'needs_reauth'), 5000)).toBe(false);
  });

  it.each([
    [1_000, 200],
    [60_000, 12_000],
    [600_000, 120_000],
    [1_500_000, 300_000],
    [1_500_001, 300_000],
    [86_400_000, 300_000],
  ])('a token living %i ms is refreshed %i ms before it expires', (lifetime, margin) => {
    const g = grant(1_000_000, lifetime);
    expect(refreshMarginMs(g.tokens)).toBe(margin);
    expect(refreshDueAt(g)).toBe(1_000_000 + lifetime - margin);
  });

  it('for any lifetime: fresh right after issue, due before expiry, a longer life never gets a shorter margin', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 1, max: 7 * 86_400_000 }),
        fc.nat(86_400_000),
        (obtainedAt, lifetime, longer) => {
          const g = grant(obtainedAt, lifetime);
          const margin = refreshMarginMs(g.tokens);
          expect(margin).toBeGreaterThan(0);
          expect(margin).toBeLessThanOrEqual(300_000);
          expect(margin).toBeLessThanOrEqual(lifetime * 0.2 + 1e-9);
          expect(refreshMarginMs(grant(obtainedAt, lifetime + longer).tokens)).toBeGreaterThanOrEqual(margin);
          expect(needsRefresh(g, obtainedAt)).toBe(false);
          expect(needsRefresh(g, g.tokens.expiresAt)).toBe(true);
        },
      ),
    );
  });
});

describe('backoffMs', () => {
  it('grows exponentially, is capped, and is jittered between 50 % and 100 % of the step', () => {
    expect(backoffMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(3, 1000, 60_000, () => 1)).toBe(4000);
    expect(backoffMs(30, 1000, 60_000, () => 1)).toBe(60_000);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true }), (failures, r) => {
        const ms = backoffMs(failures, 2000, 300_000, () => r);
        expect(ms).toBeGreaterThanOrEqual(1000);
        expect(ms).toBeLessThanOrEqual(300_000);
      }),
    );
  });
});
