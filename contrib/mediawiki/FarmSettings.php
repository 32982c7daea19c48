<?php
/**
 * Wiki farm include for LocalSettings.php: serve every wiki the portal exports.
 *
 * Require it at the END of the farm's one LocalSettings.php, after the farm-wide settings
 * (database credentials, $wgSecretKey, skins, caches), and set before that:
 *
 *   $wgFarmExportFile = '/var/lib/wiki-farm-portal/exports/farm.json';  // required
 *   $wgFarmSelectBy = 'path';         // 'path': /<wiki id>/... (default); 'host': by Host
 *   $wgFarmDatabaseHosts = [];        // cluster name => host[:port], overrides the export
 *
 * It then picks the wiki of this request (or of a maintenance script's --wiki=<id>), and:
 * - answers 404 for an unknown id and 410 for a purged one (the export's tombstones),
 *   and 503 for an archived wiki (its database is in the archive, not on a server);
 * - sets $wgDBname and $wgDBserver from the export, $wgServer and $wgScriptPath from the
 *   wiki's URL, then the wiki's effective settings (settings the portal marks as `merge`
 *   are merged into MediaWiki's defaults, e.g. $wgGroupPermissions);
 * - makes a read-only wiki (one being archived, say) read-only with $wgReadOnly.
 *
 * Settings that hold connections or secrets ($wgDB*, $wgSecretKey, ...) are never taken
 * from the export, whatever it contains.
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
	// The database is not on a server in these states: MediaWiki cannot serve the wiki.
	private const OFFLINE_STATES = [ 'archived', 'unarchiving' ];

	/** The export, decoded; cached in APCu (when present) until the file changes. */
	public static function loadExport( string $file ): array {
		$stat = @stat( $file );
		if ( $stat === false ) {
			self::refuse( 503, "The wiki farm's export $file is missing." );
		}
		$key = 'wikifarm:' . md5( $file ) . ':' . $stat['mtime'] . ':' . $stat['size'] . ':'
			. $stat['ino'];
		$apcu = function_exists( 'apcu_fetch' ) && ini_get( 'apc.enabled' );
		if ( $apcu ) {
			$cached = apcu_fetch( $key, $found );
			if ( $found ) {
				return $cached;
			}
		}
		$export = json_decode( (string)file_get_contents( $file ), true );
		if ( !is_array( $export ) || !isset( $export['wikis'] ) ) {
			self::refuse( 503, "The wiki farm's export $file is not valid." );
		}
		if ( $apcu ) {
			apcu_store( $key, $export, 300 );
		}
		return $export;
	}

	/** The wiki id this request or maintenance script is for, or null. */
	public static function requestedWikiId( array $export, string $selectBy ): ?string {
		if ( self::isCli() ) {
			// Maintenance scripts: --wiki=<id> defines MW_DB; or MW_DB in the environment.
			$id = defined( 'MW_DB' ) ? MW_DB : getenv( 'MW_DB' );
			return is_string( $id ) && $id !== '' ? $id : null;
		}
		if ( $selectBy === 'host' ) {
			$host = strtolower( preg_replace( '/:\d+$/', '', $_SERVER['HTTP_HOST'] ?? '' ) );
			foreach ( $export['wikis'] as $id => $wiki ) {
				if ( strtolower( (string)parse_url( $wiki['url'], PHP_URL_HOST ) ) === $host ) {
					return (string)$id;
				}
			}
			// An unknown host may still be a purged wiki's: the first label is its id.
			return explode( '.', $host )[0] ?: null;
		}
		$path = (string)parse_url( $_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH );
		return preg_match( '#^/([^/]+)#', $path, $m ) ? $m[1] : null;
	}

	/** Stop here with an HTTP status (or, for a script, an exit code) and a message. */
	public static function refuse( int $status, string $message ): void {
		if ( self::isCli() ) {
			fwrite( STDERR, "$message\n" );
			exit( 1 );
		}
		http_response_code( $status );
		header( 'Content-Type: text/plain; charset=utf-8' );
		header( 'Cache-Control: no-store' );
		if ( $status === 503 ) {
			header( 'Retry-After: 3600' );
		}
		echo "$message\n";
		exit( 0 );
	}

	/** The export's entry for the wiki, or a refusal saying why there is none. */
	public static function select( array $export, ?string $id ): array {
		if ( $id === null ) {
			self::refuse( 404, self::isCli()
				? 'No wiki given: run maintenance scripts with --wiki=<wiki id>.'
				: 'No wiki here: the URL must start with a wiki id.' );
		}
		if ( !preg_match( self::WIKI_ID_RE, $id ) ) {
			self::refuse( 404, 'No such wiki.' );
		}
		if ( in_array( $id, $export['tombstones'] ?? [], true ) ) {
			self::refuse( 410, "The wiki $id was deleted." );
		}
		$wiki = $export['wikis'][$id] ?? null;
		if ( $wiki === null ) {
			self::refuse( 404, "There is no wiki $id." );
		}
		if ( in_array( $wiki['state'], self::OFFLINE_STATES, true ) ) {
			self::refuse( 503, "The wiki $id is archived; its owners can ask for it back." );
		}
		return $wiki;
	}

	/** $wgDB* for the wiki's database; only MariaDB/MySQL databases can be served. */
	public static function applyDatabase( array $database, array $hosts ): void {
		if ( !in_array( $database['type'], [ 'mariadb', 'mysql' ], true ) ) {
			self::refuse( 500, "Database type {$database['type']} cannot be served." );
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

	public static function setUp(): void {
		$file = $GLOBALS['wgFarmExportFile'] ?? null;
		if ( !is_string( $file ) || $file === '' ) {
			self::refuse( 500, 'Set $wgFarmExportFile before including FarmSettings.php.' );
		}
		$export = self::loadExport( $file );
		$selectBy = $GLOBALS['wgFarmSelectBy'] ?? 'path';
		$id = self::requestedWikiId( $export, $selectBy );
		$wiki = self::select( $export, $id );
		self::applyDatabase( $wiki['database'], $GLOBALS['wgFarmDatabaseHosts'] ?? [] );
		self::applyUrl( $wiki['url'] );
		self::applySettings( $wiki['settings'] ?? [], $export['merge_settings'] ?? [] );
		if ( $wiki['read_only'] && empty( $GLOBALS['wgReadOnly'] ) ) {
			$GLOBALS['wgReadOnly'] = "This wiki is read-only while it is {$wiki['state']}.";
		}
		// For the rest of LocalSettings.php (per-wiki upload folders, say).
		$GLOBALS['wgFarmWikiId'] = $id;
		$GLOBALS['wgFarmWiki'] = $wiki;
	}
}

WikiFarmSettings::setUp();
