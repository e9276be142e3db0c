// The environment for host tools that tests run (mkfs.ext4, e2fsck, debugfs, losetup, mount,
// dmesg): they live in /usr/sbin and /sbin, which a non-login PATH may lack.
export const HOST_TOOL_ENV: NodeJS.ProcessEnv = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
