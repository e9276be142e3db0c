// How a device raises its interrupt. In a VM this is an irqfd (an EventFd registered with KVM for
// the device's GSI); in tests, a counter. Devices never see the addon.
export interface Interrupt {
  /** Edge: signal the interrupt once (irqfd: KVM pulses the line). */
  trigger(): void;
}
