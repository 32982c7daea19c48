<?php
/**
 * Wiki farm include for LocalSettings.php: serve every wiki the portal exports.
 *
 * Require it at the END of the farm's one LocalSettings.php, after the farm-wide settings
 * (database credentials, $wgSecretKey, skins, caches), and set before that:
 *
 *   $wgFarmExportDir = '/var/lib/wiki-farm-portal/exports';  // required
 *   $wgFarmSelectBy = 'path';         // 'path': /<wiki id>/... (default); 'host': by Host
 *   $wgFarmDatabaseHosts = [];        // cluster name => host[:port], overrides the export
 *   $wgFarmPortalUrl = 'https://portal.example.org/';  // optional, linked from error pages
 *   $wgFarmS3Extension = false;       // true: Extension:AWS is loaded (else detected)
 *
 * It then picks the wiki of this request (or of a maintenance script's --wiki=<id>) and
 * reads that wiki's file only, <export dir>/wikis/<id>.json (a few KB; cached in APCu when
 * present), so a request costs the same at 10 wikis and at 100,000. By host, the Host's
 * first label is tried as the id first; other hosts (custom ones) are looked up in
 * hosts.json, whose answers are cached in APCu per version of the file. Then it:
 * - answers 404 for an unknown id, 410 for a purged one (or one being purged), and 503
 *   for an archived wiki (its database is in the archive, not on a server) and for one
 *   being archived whose file says `offline` (its database is about to be dropped);
 *   browsers get a small HTML page, scripts the message on stderr and exit code 1;
 * - sets $wgDBname and $wgDBserver (MariaDB) or $wgSQLiteDataDir (SQLite) from the wiki's
 *   file, $wgServer and $wgScriptPath from its URL, then its effective settings (the
 *   settings its file lists in `merge_settings` are merged into MediaWiki's defaults, e.g.
 *   $wgGroupPermissions), then its storage ($wgUploadDirectory, or Extension:AWS's bucket);
 * - makes a read-only wiki (closed, or being archived) read-only with $wgReadOnly.
 *
 * Settings that hold connections or secrets ($wgDB*, $wgSecretKey, ...) are never taken
 * from the export, whatever it contains. The farm-wide files of the export (farm.json,
 * siteconfig.json, the dblists) are never read here.
 *
 * Define WIKI_FARM_SETTINGS_NO_SETUP before requiring this file to load the class only
 * (bench/php_include.php does, to time WikiFarmSettings::setUp() itself).
 */

if ( !defined( 'MEDIAWIKI' ) ) {
	exit( 1 );
}

final class WikiFarmSettings {
	private const WIKI_ID_RE = '/^[a-z][a-z0-9]{1,31}$/';
	private const SETTING_NAME_RE = '/^wg[A-Z][A-Za-z0-9_]{0,61}$/';
	private const PROTECTED_PREFIXES = [
		'wgDB', 'wgSharedDB', 'wgSecretKey', 'wgUpgradeKey', 'wgSessionSecret',
		'wgAuthenticationTokenVersion', 'wgLBFactoryConf', 'wgExternalServers',
		'wgLocalDatabases', 'wgConf', 'wgSettings',
	];
	private const WIKI_FORMAT = 3;
	private const HOSTS_FORMAT = 1;
	// The wiki is served in these states (read-only while closed or archiving).
	private const SERVED_STATES = [ 'active', 'closed', 'archiving' ];
	// The database is not on a server in these states: MediaWiki cannot serve the wiki.
	private const OFFLINE_STATES = [ 'archived', 'unarchiving' ];
	// The wiki is gone, or going: its file is a tombstone.
	private const GONE_STATES = [ 'purging', 'purged' ];
	private const APCU_TTL = 300;
	// hosts.json is cached in APCu in shards of about this many hosts, found by a hash of
	// the host: a lookup fetches one small shard, whatever the size of the farm.
	private const HOSTS_PER_SHARD = 32;

	private static function apcu(): bool {
		// Off on the command line unless apc.enable_cli is set.
		return function_exists( 'apcu_enabled' ) && apcu_enabled();
	}

	/** APCu key of a file's contents: it changes with the file (rename gives a new inode). */
	private static function cacheKey( string $file, array $stat ): string {
		return 'wikifarm:' . md5( $file ) . ':' . $stat['mtime'] . ':' . $stat['size'] . ':'
			. $stat['ino'];
	}

	/**
	 * A wiki's file, decoded, or null if there is none. Not cached in APCu: reading and
	 * decoding its few KB costs about as much as a fetch, and a cache keyed by the file's stat
	 * (whole seconds) could serve a stale file replaced twice within a second.
	 */
	private static function loadJson( string $file, string $what ): ?array {
		$json = @file_get_contents( $file );
		if ( $json === false ) {
			return null;
		}
		$data = json_decode( $json, true );
		if ( !is_array( $data ) ) {
			self::refuse( 503, "The wiki farm's export of $what is not valid." );
		}
		return $data;
	}

	/** The wiki's file, decoded, or null if there is none (or the id is not an id). */
	public static function loadWiki( string $dir, string $id ): ?array {
		// Checked before the id goes into a path.
		if ( !preg_match( self::WIKI_ID_RE, $id ) ) {
			return null;
		}
		$wiki = self::loadJson( "$dir/wikis/$id.json", "wiki $id" );
		if ( $wiki === null ) {
			if ( !is_dir( "$dir/wikis" ) ) {
				// Not mounted, say: not a reason to tell every visitor there is no wiki.
				self::refuse( 503, "The wiki farm's export is missing." );
			}
			return null;
		}
		if ( ( $wiki['format'] ?? null ) !== self::WIKI_FORMAT || ( $wiki['id'] ?? null ) !== $id
			|| !is_string( $wiki['state'] ?? null )
		) {
			self::refuse( 503, "The wiki farm's export of wiki $id is not valid." );
		}
		return $wiki;
	}

	/** The wiki id hosts.json gives the host, or null. */
	public static function lookUpHost( string $dir, string $host ): ?string {
		$file = "$dir/hosts.json";
		$apcu = self::apcu();
		if ( $apcu ) {
			$stat = @stat( $file );
			if ( $stat === false ) {
				return null;
			}
			// A missing entry means "not cached", never "not in hosts.json": entries may be
			// evicted one by one, and an unknown host must not cost the whole file.
			$key = self::cacheKey( $file, $stat ) . ':hosts';
			$shards = apcu_fetch( "$key:shards", $found );
			if ( $found ) {
				$shard = apcu_fetch( "$key:" . self::shardOf( $host, $shards ), $found );
				if ( $found ) {
					return $shard[$host] ?? null;
				}
			}
		}
		$json = @file_get_contents( $file );
		if ( $json === false ) {
			return null;
		}
		$data = json_decode( $json, true );
		if ( !is_array( $data ) || ( $data['format'] ?? null ) !== self::HOSTS_FORMAT
			|| !is_array( $data['hosts'] ?? null )
		) {
			self::refuse( 503, "The wiki farm's export of hosts is not valid." );
		}
		$hosts = array_change_key_case( $data['hosts'], CASE_LOWER );
		if ( $apcu ) {
			$shards = 1;
			while ( $shards * self::HOSTS_PER_SHARD < count( $hosts ) ) {
				$shards *= 2;
			}
			$entries = array_fill( 0, $shards, [] );
			foreach ( $hosts as $name => $id ) {
				$entries[self::shardOf( (string)$name, $shards )][$name] = $id;
			}
			$store = [];
			foreach ( $entries as $shard => $entry ) {
				$store["$key:$shard"] = $entry;
			}
			// The shard count last: once it is there, a missing shard was evicted.
			$store["$key:shards"] = $shards;
			apcu_store( $store, null, self::APCU_TTL );
		}
		$id = $hosts[$host] ?? null;
		return is_string( $id ) ? $id : null;
	}

	private static function shardOf( string $host, int $shards ): int {
		return crc32( $host ) & ( $shards - 1 );
	}

	/** Lower case, without a port. */
	private static function normalizeHost( string $host ): string {
		return strtolower( preg_replace( '/:\d+$/', '', $host ) );
	}

	/**
	 * The id of the wiki this request or maintenance script is for (or null), and that
	 * wiki's file (or null if there is none).
	 */
	public static function requestedWiki( string $dir, string $selectBy, bool $script ): array {
		if ( $script ) {
			// Maintenance scripts: --wiki=<id> defines MW_DB; or MW_DB in the environment.
			$id = defined( 'MW_DB' ) ? MW_DB : getenv( 'MW_DB' );
			$id = is_string( $id ) && $id !== '' ? $id : null;
		} elseif ( $selectBy === 'host' ) {
			return self::wikiForHost( $dir, self::normalizeHost( $_SERVER['HTTP_HOST'] ?? '' ) );
		} else {
			$path = (string)parse_url( $_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH );
			$id = preg_match( '#^/([^/]+)#', $path, $m ) ? $m[1] : null;
		}
		return [ $id, $id === null ? null : self::loadWiki( $dir, $id ) ];
	}

	/** By host: <id>.<domain> is tried first, then hosts.json (custom hosts). */
	private static function wikiForHost( string $dir, string $host ): array {
		$candidate = explode( '.', $host )[0];
		if ( $candidate === '' ) {
			return [ null, null ];
		}
		$wiki = self::loadWiki( $dir, $candidate );
		if ( $wiki !== null && isset( $wiki['host'] )
			&& self::normalizeHost( (string)$wiki['host'] ) === $host
		) {
			return [ $candidate, $wiki ];
		}
		$id = self::lookUpHost( $dir, $host );
		if ( $id !== null ) {
			return [ $id, self::loadWiki( $dir, $id ) ];
		}
		// A purged wiki's file has no host any more: its old host still gets the 410.
		if ( $wiki !== null && !isset( $wiki['host'] ) ) {
			return [ $candidate, $wiki ];
		}
		return [ $candidate, null ];
	}

	private const STATUS_TITLES = [
		404 => 'No such wiki', 410 => 'Wiki deleted', 500 => 'Wiki farm misconfigured',
		503 => 'Wiki not available',
	];

	/**
	 * Stop here with an HTTP status (or, for a script, an exit code) and a message: plain
	 * text on a script's stderr and for clients that do not ask for HTML (API clients), a
	 * small HTML page for browsers. $hint is a further sentence for the HTML page only.
	 */
	public static function refuse( int $status, string $message, string $hint = '' ): void {
		if ( self::isCli() ) {
			fwrite( STDERR, "$message\n" );
			exit( 1 );
		}
		http_response_code( $status );
		header( 'Cache-Control: no-store' );
		if ( $status === 503 ) {
			header( 'Retry-After: 3600' );
		}
		if ( !str_contains( (string)( $_SERVER['HTTP_ACCEPT'] ?? '' ), 'text/html' ) ) {
			header( 'Content-Type: text/plain; charset=utf-8' );
			echo "$message\n";
			exit( 0 );
		}
		header( 'Content-Type: text/html; charset=utf-8' );
		$e = static fn ( string $text ): string => htmlspecialchars( $text, ENT_QUOTES, 'UTF-8' );
		$title = self::STATUS_TITLES[$status] ?? 'Wiki farm';
		$links = '<a href="/">All wikis of this farm</a>';
		$portal = $GLOBALS['wgFarmPortalUrl'] ?? null;
		if ( is_string( $portal ) && preg_match( '#^https?://#', $portal ) ) {
			$links .= ' &middot; <a href="' . $e( $portal ) . '">The wiki farm portal</a>';
		}
		echo "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			. '<meta name="robots" content="noindex"><title>' . $e( $title ) . '</title></head>'
			. "<body>\n<h1>" . $e( $title ) . "</h1>\n<p>" . $e( $message ) . "</p>\n"
			. ( $hint !== '' ? '<p>' . $e( $hint ) . "</p>\n" : '' )
			. "<p>$links</p>\n</body></html>\n";
		exit( 0 );
	}

	/** The wiki's file if it can be served, or a refusal saying why not. */
	public static function select( ?string $id, ?array $wiki, bool $script ): array {
		if ( $id === null ) {
			self::refuse( 404, $script
				? 'No wiki given: run maintenance scripts with --wiki=<wiki id>.'
				: 'No wiki here: the URL must start with a wiki id.' );
		}
		if ( !preg_match( self::WIKI_ID_RE, $id ) ) {
			self::refuse( 404, 'No such wiki.' );
		}
		if ( $wiki === null ) {
			self::refuse( 404, "There is no wiki $id.",
				'Check the address, or pick a wiki from the list of this farm\'s wikis.' );
		}
		$state = $wiki['state'];
		if ( in_array( $state, self::GONE_STATES, true ) ) {
			self::refuse( 410, "The wiki $id was deleted.",
				'Its pages and files were removed for good; this address will not come back.' );
		}
		if ( in_array( $state, self::OFFLINE_STATES, true ) ) {
			self::refuse( 503, "The wiki $id is archived; its owners can ask for it back.",
				'Its pages and files are kept in the archive and can be restored.' );
		}
		if ( !empty( $wiki['offline'] ) ) {
			// Archiving: the database is dumped and about to be dropped.
			self::refuse( 503, "The wiki $id is being archived; its owners can ask for it back.",
				'Its pages and files are kept in the archive and can be restored.' );
		}
		if ( !in_array( $state, self::SERVED_STATES, true ) ) {
			self::refuse( 503, "The wiki $id is not available now." );
		}
		if ( !is_array( $wiki['database'] ?? null ) || !is_string( $wiki['url'] ?? null ) ) {
			self::refuse( 503, "The wiki farm's export of wiki $id is not valid." );
		}
		return $wiki;
	}

	/**
	 * $wgDB* for the wiki's database: MariaDB/MySQL (on the host of its cluster), or an
	 * SQLite file, <dir>/<name>.sqlite ($wgSQLiteDataDir/$wgDBname.sqlite).
	 */
	public static function applyDatabase( array $database, array $hosts ): void {
		$type = $database['type'] ?? null;
		if ( !is_string( $database['name'] ?? null ) || $database['name'] === '' ) {
			self::refuse( 503, "The wiki farm's export names no database." );
		}
		if ( $type === 'sqlite' ) {
			$dir = $database['dir'] ?? null;
			if ( !is_string( $dir ) || !str_starts_with( $dir, '/' ) ) {
				self::refuse( 503, "The wiki farm's export gives no SQLite folder." );
			}
			$GLOBALS['wgDBtype'] = 'sqlite';
			$GLOBALS['wgSQLiteDataDir'] = rtrim( $dir, '/' );
			$GLOBALS['wgDBname'] = $database['name'];
			return;
		}
		if ( !in_array( $type, [ 'mariadb', 'mysql' ], true ) ) {
			$type = is_string( $type ) ? $type : '(none)';
			self::refuse( 500, "Database type $type cannot be served." );
		}
		$GLOBALS['wgDBtype'] = 'mysql';
		$GLOBALS['wgDBname'] = $database['name'];
		$cluster = $database['cluster'] ?? 'default';
		$host = $hosts[$cluster] ?? $database['host'] ?? null;
		if ( $host !== null ) {
			$GLOBALS['wgDBserver'] = $host;
		}
	}

	/** $wgServer and $wgScriptPath from the wiki's URL, e.g. https://host/<id>/. */
	public static function applyUrl( string $url ): void {
		$parts = parse_url( $url );
		$server = $parts['scheme'] . '://' . $parts['host'];
		if ( isset( $parts['port'] ) ) {
			$server .= ':' . $parts['port'];
		}
		$GLOBALS['wgServer'] = $server;
		$GLOBALS['wgScriptPath'] = rtrim( $parts['path'] ?? '', '/' );
		$GLOBALS['wgResourceBasePath'] = $GLOBALS['wgScriptPath'];
	}

	/**
	 * Where the wiki's uploads are. Filesystem: $wgUploadDirectory is the storage folder and
	 * $wgUploadPath <script path>/images (the router, or the web server, serves that from the
	 * folder). S3: Extension:AWS's settings, when the farm loaded the extension (or set
	 * $wgFarmS3Extension = true); without it uploads stay where LocalSettings.php put them.
	 * $wgEnableUploads is left to the wiki's settings, and turned off for a wiki without a
	 * storage location of its own (none in the export, or S3 without the extension).
	 */
	public static function applyStorage( ?array $storage ): void {
		$type = $storage['type'] ?? null;
		if ( $type === 'filesystem' && is_string( $storage['path'] ?? null )
			&& str_starts_with( $storage['path'], '/' )
		) {
			$GLOBALS['wgUploadDirectory'] = rtrim( $storage['path'], '/' );
			$GLOBALS['wgUploadPath'] = $GLOBALS['wgScriptPath'] . '/images';
		} elseif ( $type === 's3' && is_string( $storage['bucket'] ?? null ) && self::awsLoaded() ) {
			$GLOBALS['wgAWSBucketName'] = $storage['bucket'];
			// Extension:AWS wants the folder inside the bucket with a leading slash, none at
			// the end: wikis/<id>/ -> /wikis/<id>.
			$prefix = trim( (string)( $storage['prefix'] ?? '' ), '/' );
			$GLOBALS['wgAWSBucketTopSubdirectory'] = $prefix === '' ? '' : "/$prefix";
			if ( is_string( $storage['region'] ?? null ) && $storage['region'] !== '' ) {
				$GLOBALS['wgAWSRegion'] = $storage['region'];
			}
			if ( is_string( $storage['endpoint'] ?? null ) && $storage['endpoint'] !== '' ) {
				// MinIO, Ceph and the like: Extension:AWS passes $wgFileBackends['s3'] to the
				// S3 client; path-style addressing for endpoints without bucket subdomains.
				$GLOBALS['wgFileBackends']['s3']['endpoint'] = $storage['endpoint'];
				$GLOBALS['wgFileBackends']['s3']['use_path_style_endpoint'] = true;
			}
		} else {
			// No place of the wiki's own: uploads would land in a folder shared by every
			// wiki (MediaWiki's $IP/images).
			$GLOBALS['wgEnableUploads'] = false;
		}
	}

	private static function awsLoaded(): bool {
		if ( !empty( $GLOBALS['wgFarmS3Extension'] ) ) {
			return true;
		}
		if ( !class_exists( ExtensionRegistry::class, false ) ) {
			return false;
		}
		// Settings files run before the queued extensions are loaded: look at the queue too.
		$registry = ExtensionRegistry::getInstance();
		if ( $registry->isLoaded( 'AWS' ) ) {
			return true;
		}
		foreach ( array_keys( $registry->getQueue() ) as $path ) {
			if ( basename( dirname( (string)$path ) ) === 'AWS' ) {
				return true;
			}
		}
		return false;
	}

	/** The effective settings; `merge` ones are merged into what is already set. */
	public static function applySettings( array $settings, array $mergeSettings ): void {
		foreach ( $settings as $name => $value ) {
			if ( !self::isAllowedSetting( (string)$name ) ) {
				continue;
			}
			$current = $GLOBALS[$name] ?? null;
			if ( in_array( $name, $mergeSettings, true ) && is_array( $current )
				&& is_array( $value )
			) {
				$value = self::merge( $current, $value );
			}
			$GLOBALS[$name] = $value;
		}
	}

	/** Maps merge key by key (the later value winning), lists are unioned in order. */
	public static function merge( array $base, array $override ): array {
		if ( array_is_list( $base ) && array_is_list( $override ) ) {
			return array_values( array_unique( array_merge( $base, $override ), SORT_REGULAR ) );
		}
		foreach ( $override as $key => $value ) {
			$base[$key] = ( is_array( $value ) && is_array( $base[$key] ?? null ) )
				? self::merge( $base[$key], $value )
				: $value;
		}
		return $base;
	}

	private static function isAllowedSetting( string $name ): bool {
		if ( !preg_match( self::SETTING_NAME_RE, $name ) ) {
			return false;
		}
		foreach ( self::PROTECTED_PREFIXES as $prefix ) {
			if ( str_starts_with( $name, $prefix ) ) {
				return false;
			}
		}
		return true;
	}

	private static function isCli(): bool {
		return PHP_SAPI === 'cli' || PHP_SAPI === 'phpdbg';
	}

	/**
	 * Pick this request's wiki and set it up. $script: whether this is a maintenance script
	 * (the wiki from --wiki=<id>); by default when PHP runs from the command line.
	 * bench/php_include.php passes false, to time web requests from the command line.
	 */
	public static function setUp( ?bool $script = null ): void {
		$script ??= self::isCli();
		$dir = $GLOBALS['wgFarmExportDir'] ?? null;
		if ( !is_string( $dir ) || $dir === '' ) {
			self::refuse( 500, 'Set $wgFarmExportDir before including FarmSettings.php.' );
		}
		$dir = rtrim( $dir, '/' );
		$selectBy = $GLOBALS['wgFarmSelectBy'] ?? 'path';
		[ $id, $wiki ] = self::requestedWiki( $dir, $selectBy, $script );
		$wiki = self::select( $id, $wiki, $script );
		self::applyDatabase( $wiki['database'], $GLOBALS['wgFarmDatabaseHosts'] ?? [] );
		self::applyUrl( $wiki['url'] );
		self::applySettings( $wiki['settings'] ?? [], $wiki['merge_settings'] ?? [] );
		self::applyStorage( is_array( $wiki['storage'] ?? null ) ? $wiki['storage'] : null );
		if ( !empty( $wiki['read_only'] ) && empty( $GLOBALS['wgReadOnly'] ) ) {
			$reason = $wiki['read_only_reason'] ?? null;
			$GLOBALS['wgReadOnly'] = is_string( $reason ) && $reason !== ''
				? $reason
				: "This wiki is read-only while it is {$wiki['state']}.";
		}
		// For the rest of LocalSettings.php (per-wiki upload folders, say).
		$GLOBALS['wgFarmWikiId'] = $id;
		$GLOBALS['wgFarmWiki'] = $wiki;
	}
}

if ( !defined( 'WIKI_FARM_SETTINGS_NO_SETUP' ) ) {
	WikiFarmSettings::setUp();
}
