// virtio-mmio register offsets and status bits (virtio 1.2 §4.2.2, version 2 "modern" layout).
export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt"
export const VIRTIO_MMIO_VERSION = 2;
/** Vendor id reported to drivers: the bytes "TSVM" read little-endian. */
export const VIRTIO_VENDOR_ID = 0x4d565354;

export const REG = {
  magic: 0x000,
  version: 0x004,
  deviceId: 0x008,
  vendorId: 0x00c,
  deviceFeatures: 0x010,
  deviceFeaturesSel: 0x014,
  driverFeatures: 0x020,
  driverFeaturesSel: 0x024,
  queueSel: 0x030,
  queueNumMax: 0x034,
  queueNum: 0x038,
  queueReady: 0x044,
  queueNotify: 0x050,
  interruptStatus: 0x060,
  interruptAck: 0x064,
  status: 0x070,
  queueDescLow: 0x080,
  queueDescHigh: 0x084,
  queueDriverLow: 0x090,
  queueDriverHigh: 0x094,
  queueDeviceLow: 0x0a0,
  queueDeviceHigh: 0x0a4,
  shmSel: 0x0ac,
  shmLenLow: 0x0b0,
  shmLenHigh: 0x0b4,
  shmBaseLow: 0x0b8,
  shmBaseHigh: 0x0bc,
  queueReset: 0x0c0,
  configGeneration: 0x0fc,
  config: 0x100,
} as const;

/** Device status bits (§2.1). */
export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** InterruptStatus bits (§4.2.2). */
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

/** Feature bits every modern device offers (§6). */
export const VIRTIO_F_VERSION_1 = 32n;
export const VIRTIO_F_INDIRECT_DESC = 28n;
export const VIRTIO_F_EVENT_IDX = 29n;
export const VIRTIO_F_ACCESS_PLATFORM = 33n;

export const MAX_QUEUES = 16;
export const MAX_QUEUE_SIZE = 32768;
export const CONFIG_SPACE_SIZE = 256;
/** Shared-memory regions (virtio-fs DAX window) a transport can describe. */
export const MAX_SHM_REGIONS = 4;
