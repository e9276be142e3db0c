// The kernels/ guest for tests that boot Linux (see src/check/guest-kernel.ts).
export { findGuestKernel as guestKernel, type GuestKernel } from '../../src/check/guest-kernel.js';
