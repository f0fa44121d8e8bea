/** The embedded default: what runs without a configuration file, and a file to start from. */
import type { SluiceConfig } from './types.ts';
import { validateConfig } from './validate.ts';

const DEFAULT_RAW = {
  data_dir: './data',
  api: { address: '127.0.0.1:9598' },
  sources: {
    talos_service: { type: 'tcp', address: '127.0.0.1:5170', host_key: '__host' },
    talos_kernel: { type: 'udp', address: '127.0.0.1:6050', host_key: '__host' },
  },
  sinks: {
    local: {
      type: 'file',
      inputs: ['talos_service', 'talos_kernel'],
      path: './data/out',
      key_prefix: 'talos/',
      compression: 'zstd',
      upload_period_secs: 60,
    },
  },
};

/**
 * The default configuration: Talos service logs on tcp 127.0.0.1:5170, kernel logs on udp
 * 127.0.0.1:6050, both written zstd-compressed under ./data/out, API on 127.0.0.1:9598.
 */
export function defaultConfig(): SluiceConfig {
  return validateConfig(DEFAULT_RAW, {});
}

/** defaultConfig() as a commented YAML file a user can copy and edit. */
export const DEFAULT_CONFIG_YAML = `# Sluice configuration. Every option, its default and range: the README, "Configuration reference"
# Strings may use \${VAR} or \${VAR:-default} from the environment; $$ is a literal $.
# Commented-out options show their defaults.

data_dir: ./data
# shutdown_timeout_secs: 30          # drain deadline on SIGTERM, 1..3600

api:
  address: 127.0.0.1:9598            # enabled: false turns the HTTP API off

# log:
#   level: info                      # trace | debug | info | warn | error | fatal
#   format: json                     # json | pretty

# workers:
#   threads: 4                       # default: one per CPU but one (at least 1), 1..64
#   batch_bytes: 262144              # raw record bytes per worker task
#   batch_timeout_ms: 50             # a partial batch leaves after this long

# dead_letter:                       # absent: malformed records are counted and dropped
#   path: ./data/dead-letter
#   key_prefix: ""
#   upload_period_secs: 60

sources:
  # Talos machine config: machine.logging.destinations[].endpoint tcp://<host>:5170,
  # format json_lines.
  talos_service:
    type: tcp
    address: 127.0.0.1:5170          # 0.0.0.0:5170 to accept from the network
    host_key: __host                 # record key that receives the peer address
    # extra_tags: { cluster: prod }  # added to every record; values are strings
    # ring_bytes: 2097152
    # max_line_bytes: 262144
    # max_connections: 1024
    # idle_timeout_secs: 300         # 0 = never
    # tls: { cert_file: cert.pem, key_file: key.pem }  # TLS only; see the README, tls
    #                                # (handshake_timeout_secs: 10 closes a connection that has not finished its handshake)
  # Talos kernel argument: talos.logging.kernel=udp://<host>:6050
  talos_kernel:
    type: udp
    address: 127.0.0.1:6050
    host_key: __host
    # ring_bytes: 8388608
    # receive_buffer_bytes: 8388608
    # sockets: 2
  # Tailscale log streaming and other Splunk HEC senders (docs/hec.md), options at their
  # defaults; add it to a sink's inputs:
#  tailscale:
#    type: splunk_hec
#    address: "[::]:8088"
#    valid_tokens: ["\${HEC_TOKEN}"]
#    max_body_bytes: 16777216
#    max_connections: 1024           # at the limit, a new one replaces one idle for 1 s or more
#    header_timeout_secs: 10         # request line and headers complete within this, else 408
#    body_timeout_secs: 10           # the body gets this, plus 1 s per min_body_bytes_per_sec
#    min_body_bytes_per_sec: 1024    # received; slower gets 408 (0 = all within body_timeout_secs)
#    # tls: { cert_file: cert.pem, key_file: key.pem, handshake_timeout_secs: 10 }

sinks:
  local:
    type: file
    inputs: [talos_service, talos_kernel]
    path: ./data/out
    key_prefix: talos/
    compression: zstd                # zstd | gzip | none
    # compression_level: 3           # zstd 1..19 (3), gzip 1..9 (6)
    upload_period_secs: 60           # close an object at least this often
    # max_object_bytes: 268435456    # or when it reaches this many compressed bytes
    # when_full: block               # disk full: block (hold, retry) | drop_newest (drop and count)
  # s3:
  #   type: aws_s3
  #   inputs: [talos_service, talos_kernel]
  #   endpoint: http://127.0.0.1:7480  # leave out for AWS
  #   bucket: logs
  #   region: us-east-1
  #   access_key_id: \${S3_ACCESS_KEY_ID}      # leave both out for the AWS credential chain
  #   secret_access_key: \${S3_SECRET_ACCESS_KEY}
  #   key_prefix: talos/
  #   force_path_style: true
  #   part_size_bytes: 5242880
  #   queue_size: 4
  #   max_buffered_bytes: 67108864
  #   when_full: block                 # block | drop_newest
  #   shutdown_timeout_secs: 30
`;
